"""ROUGE as a local `evaluate` metric: ``evaluate.load("<this folder>")`` works offline.

The Hub's ``evaluate-metric/rouge`` script cannot be downloaded on machines without Hub access, so the zoo ships
its own: ROUGE-N / ROUGE-L / ROUGE-Lsum F-measures computed with Google's `rouge-score` package, the reference
implementation behind the Hub metric. This file is self-contained (it is copied into evaluate's module cache and
imported from there): it imports only `datasets`, `evaluate` and `rouge_score`.

Differences from the Hub metric, on purpose:

* The aggregate is the plain mean of the per-example F-measures (deterministic), not the median of a bootstrap
  resample (`BootstrapAggregator`'s "mid"), which moves with its random sampling.
* ``rougeLsum`` treats newlines as sentence boundaries and never calls NLTK's sentence splitter (which needs a
  download): put one sentence per line yourself (`adaptive_zoo.evaluation.text_metrics.newline_sentences`).
"""

import datasets
import evaluate
from rouge_score import rouge_scorer

_CITATION = """\
@inproceedings{lin-2004-rouge,
    title = "{ROUGE}: A Package for Automatic Evaluation of Summaries",
    author = "Lin, Chin-Yew",
    booktitle = "Text Summarization Branches Out",
    year = "2004",
    publisher = "Association for Computational Linguistics",
    pages = "74--81",
}
"""

_DESCRIPTION = """\
ROUGE (Recall-Oriented Understudy for Gisting Evaluation) compares generated text with one or more references by
n-gram overlap (rouge1, rouge2, ...) and longest common subsequence (rougeL over the whole text, rougeLsum over
sentences split at newlines). Tokenization is rouge-score's default: lowercase, runs of [a-z0-9]; optionally
Porter-stemmed. Scores are F-measures in [0, 1].
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of reference texts, or list of lists of references (each prediction is scored against its
        best-matching reference, per ROUGE type).
    rouge_types: ROUGE types to compute; defaults to ["rouge1", "rouge2", "rougeL", "rougeLsum"]. Any "rougeN"
        with N a positive integer is allowed.
    use_aggregator: True (default) returns the mean F-measure over examples; False a list per example.
    use_stemmer: Porter-stem tokens before matching (default False, like the Hub metric).
    tokenizer: an object with a `tokenize(text) -> list[str]` method, or a callable text -> tokens, to replace
        rouge-score's default tokenizer.
Returns:
    A dict {rouge_type: float F-measure in [0, 1]} (or lists of floats with use_aggregator=False).
Examples:
    >>> rouge = evaluate.load("path/to/metrics/rouge")
    >>> rouge.compute(predictions=["the cat sat"], references=["the cat sat down"])["rouge1"]
    0.8571428571428571
"""

DEFAULT_ROUGE_TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


class _CallableTokenizer:
    """Adapts a plain function text -> tokens to rouge-score's tokenizer interface."""

    def __init__(self, function):
        self.function = function

    def tokenize(self, text):
        return self.function(text)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Sequence(datasets.Value("string", id="sequence")),
                    }
                ),
                datasets.Features(
                    {
                        "predictions": datasets.Value("string", id="sequence"),
                        "references": datasets.Value("string", id="sequence"),
                    }
                ),
            ],
            codebase_urls=["https://github.com/google-research/google-research/tree/master/rouge"],
            reference_urls=["https://aclanthology.org/W04-1013/"],
        )

    def _compute(self, predictions, references, rouge_types=None, use_aggregator=True, use_stemmer=False,
                 tokenizer=None):
        rouge_types = list(DEFAULT_ROUGE_TYPES if rouge_types is None else rouge_types)
        if tokenizer is not None and not hasattr(tokenizer, "tokenize"):
            tokenizer = _CallableTokenizer(tokenizer)
        scorer = rouge_scorer.RougeScorer(rouge_types=rouge_types, use_stemmer=use_stemmer, tokenizer=tokenizer)
        per_example = {rouge_type: [] for rouge_type in rouge_types}
        for prediction, reference in zip(predictions, references):
            if isinstance(reference, str):
                scores = scorer.score(reference, prediction)
            else:
                scores = scorer.score_multi(reference, prediction)
            for rouge_type in rouge_types:
                per_example[rouge_type].append(float(scores[rouge_type].fmeasure))
        if not use_aggregator:
            return per_example
        count = len(predictions)
        return {rouge_type: (sum(values) / count if count else 0.0) for rouge_type, values in per_example.items()}
