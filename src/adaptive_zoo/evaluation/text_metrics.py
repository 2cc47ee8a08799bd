"""ROUGE and BLEU for the zoo's generation models, offline.

The metrics are local `evaluate` modules shipped inside the package (``adaptive_zoo/evaluation/metrics/rouge`` and
``.../sacrebleu``), because ``evaluate.load("rouge")`` fetches its script from the Hub. Load them with
`load_rouge` / `load_sacrebleu` (or ``evaluate.load(metric_path("rouge"))``); score with `rouge_scores` /
`bleu_score`; and pass `seq2seq_compute_metrics(tokenizer)` to a ``Seq2SeqTrainer(predict_with_generate=True)``.

Scores here are scaled to 0-100 and rounded to `digits` decimals (4 by default), as summarization papers report
them. ROUGE uses Porter stemming by default (`use_stemmer=True`, as the usual ROUGE-1.5.5 settings and the
transformers summarization example do; the metric module's own default is False, like the Hub's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "METRICS_DIR",
    "bleu_score",
    "load_rouge",
    "load_sacrebleu",
    "metric_path",
    "newline_sentences",
    "rouge_scores",
    "seq2seq_compute_metrics",
]

METRICS_DIR = Path(__file__).resolve().parent / "metrics"
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def metric_path(name: str) -> str:
    """Folder of a bundled metric ("rouge", "sacrebleu"), for ``evaluate.load``."""
    folder = METRICS_DIR / name
    if not (folder / f"{name}.py").is_file():
        known = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"No bundled metric {name!r} in {METRICS_DIR}; known: {', '.join(known)}.")
    return str(folder)


@lru_cache(maxsize=None)
def _load(name: str):
    import evaluate  # lazy: heavy to import, and only generation scores (ROUGE, BLEU) need it

    # keep_in_memory: no Arrow cache files on disk for every compute() call.
    return evaluate.load(metric_path(name), keep_in_memory=True)


def load_rouge():
    """The bundled ROUGE `evaluate.Metric` (loaded once per process)."""
    return _load("rouge")


def load_sacrebleu():
    """The bundled SacreBLEU `evaluate.Metric` (loaded once per process)."""
    return _load("sacrebleu")


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def newline_sentences(text: str) -> str:
    """One sentence per line, for ROUGE-Lsum: a light splitter at '.', '!' or '?' followed by whitespace (NLTK's
    Punkt, which the transformers examples use, needs a download). Existing newlines are kept."""
    return "\n".join(part.strip() for part in _SENTENCE_END.split(text.strip()) if part.strip())


def rouge_scores(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    rouge_types: Sequence[str] = ROUGE_TYPES,
    use_stemmer: bool = True,
    split_sentences: bool = True,
    digits: int | None = 4,
) -> dict[str, float]:
    """Mean ROUGE F-measures, scaled to 0-100: ``{"rouge1": ..., "rouge2": ..., "rougeL": ..., "rougeLsum": ...}``.

    `references` holds one reference per prediction, or a list of references each (the best one counts).
    `split_sentences` puts every sentence on its own line first (only ROUGE-Lsum depends on it).
    """
    if len(predictions) != len(references):
        raise ValueError(f"Got {len(predictions)} predictions but {len(references)} references.")
    if not len(predictions):
        raise ValueError("ROUGE of an empty set of predictions is undefined; pass at least one.")
    if split_sentences:
        predictions = [newline_sentences(text) for text in predictions]
        references = [newline_sentences(r) if isinstance(r, str) else [newline_sentences(t) for t in r]
                      for r in references]
    scores = load_rouge().compute(predictions=list(predictions), references=list(references),
                                  rouge_types=list(rouge_types), use_stemmer=use_stemmer)
    return {name: _scale(value, digits) for name, value in scores.items()}


def bleu_score(
    predictions: Sequence[str],
    references: Sequence[str] | Sequence[Sequence[str]],
    *,
    digits: int | None = 4,
    details: bool = False,
    **sacrebleu_kwargs,
) -> float | dict:
    """Corpus BLEU (SacreBLEU, 0-100). `references`: one per prediction, or the same number of references for
    each. ``details=True`` returns SacreBLEU's full output (counts, precisions, brevity penalty, lengths)."""
    if len(predictions) != len(references):
        raise ValueError(f"Got {len(predictions)} predictions but {len(references)} references.")
    if not len(predictions):
        raise ValueError("BLEU of an empty set of predictions is undefined; pass at least one.")
    output = load_sacrebleu().compute(predictions=list(predictions), references=list(references),
                                      **sacrebleu_kwargs)
    output["score"] = round(output["score"], digits) if digits is not None else output["score"]
    return output if details else output["score"]


def _scale(value: float, digits: int | None) -> float:
    value = float(value) * 100
    return round(value, digits) if digits is not None else value


def seq2seq_compute_metrics(
    tokenizer,
    *,
    use_stemmer: bool = True,
    split_sentences: bool = True,
    with_bleu: bool = False,
    digits: int | None = 4,
) -> Callable:
    """A ``compute_metrics`` for ``Seq2SeqTrainer(predict_with_generate=True)``: decodes generated ids and labels
    with `tokenizer` (-100, the ignored label and the Trainer's padding between batches, becomes the pad id;
    special tokens are skipped) and returns rouge1, rouge2, rougeL, rougeLsum (0-100), gen_len (mean number of
    non-pad tokens generated) and, with `with_bleu`, bleu."""
    pad_token_id = tokenizer.pad_token_id
    if pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; -100 positions cannot be decoded.")

    def compute_metrics(eval_prediction) -> dict[str, float]:
        predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
        if isinstance(predictions, tuple):  # extra outputs after the generated ids
            predictions = predictions[0]
        predictions = np.where(np.asarray(predictions) != -100, predictions, pad_token_id)
        labels = np.where(np.asarray(labels) != -100, labels, pad_token_id)
        if predictions.ndim == 3:
            raise ValueError(
                "compute_metrics got logits, not generated ids: set predict_with_generate=True in "
                "Seq2SeqTrainingArguments."
            )
        decoded_predictions = [text.strip() for text in tokenizer.batch_decode(predictions, skip_special_tokens=True)]
        decoded_labels = [text.strip() for text in tokenizer.batch_decode(labels, skip_special_tokens=True)]
        result = rouge_scores(decoded_predictions, decoded_labels, use_stemmer=use_stemmer,
                              split_sentences=split_sentences, digits=digits)
        if with_bleu:
            result["bleu"] = bleu_score(decoded_predictions, decoded_labels, digits=digits)
        gen_len = float(np.mean(np.count_nonzero(predictions != pad_token_id, axis=-1)))
        result["gen_len"] = round(gen_len, digits) if digits is not None else gen_len
        return result

    return compute_metrics
