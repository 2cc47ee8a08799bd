"""SacreBLEU as a local `evaluate` metric: ``evaluate.load("<this folder>")`` works offline.

A stand-in for the Hub's ``evaluate-metric/sacrebleu`` script (which cannot be downloaded without Hub access), with
the same inputs and outputs, computed by the `sacrebleu` package (Post, 2018). This file is self-contained: it
imports only `datasets`, `evaluate` and `sacrebleu`.
"""

import datasets
import evaluate
import sacrebleu as scb

_CITATION = """\
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    publisher = "Association for Computational Linguistics",
    pages = "186--191",
}
"""

_DESCRIPTION = """\
Corpus-level BLEU computed by SacreBLEU with its standard, reproducible tokenization (13a by default). The score is
in [0, 100].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of reference texts, or list of lists of references; every prediction needs the same number
        of references.
    smooth_method: 'exp' (default), 'floor', 'add-k' or 'none'.
    smooth_value: the value for 'floor' / 'add-k' smoothing.
    force: accept tokenized-looking input without a warning.
    lowercase: lowercase before scoring.
    tokenize: SacreBLEU tokenizer ('13a' default, 'none', 'zh', 'intl', 'char', ...).
    use_effective_order: count only n-gram orders that have matches (for sentence-level BLEU).
Returns:
    score (float, 0-100), counts, totals, precisions (per n-gram order), bp (brevity penalty), sys_len, ref_len.
Examples:
    >>> bleu = evaluate.load("path/to/metrics/sacrebleu")
    >>> bleu.compute(predictions=["hello there general kenobi"], references=[["hello there general kenobi"]])["score"]
    100.00000000000004
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Sacrebleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Sequence(datasets.Value("string", id="sequence"), id="references"),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Value("string", id="sequence"),
                    }
                ),
            ],
            codebase_urls=["https://github.com/mjpost/sacreBLEU"],
            reference_urls=["https://aclanthology.org/W18-6319/"],
        )

    def _compute(self, predictions, references, smooth_method="exp", smooth_value=None, force=False,
                 lowercase=False, tokenize=None, use_effective_order=False):
        references = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
        counts_per_prediction = {len(reference) for reference in references}
        if len(counts_per_prediction) > 1:
            raise ValueError(
                "SacreBLEU needs the same number of references for every prediction; got "
                f"{sorted(counts_per_prediction)}."
            )
        streams = [list(stream) for stream in zip(*references)]  # one stream per reference position
        bleu = scb.BLEU(smooth_method=smooth_method, smooth_value=smooth_value, force=force, lowercase=lowercase,
                        tokenize=tokenize, effective_order=use_effective_order)
        output = bleu.corpus_score(predictions, streams)
        return {
            "score": output.score,
            "counts": output.counts,
            "totals": output.totals,
            "precisions": output.precisions,
            "bp": output.bp,
            "sys_len": output.sys_len,
            "ref_len": output.ref_len,
        }
