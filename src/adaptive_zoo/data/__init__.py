"""Task datasets: bundled real data (no Hub needed), local files, and Hub ids behind one loader; the input checks
and tokenization that turn their text columns into model input."""

from .registry import (
    KNOWN_DATASETS,
    DatasetSpec,
    TaskData,
    get_dataset_spec,
    load_task_data,
    load_task_dataset,
)
from .splits import select_first, split_dataset
from .text import (
    check_label_count,
    check_texts,
    check_token_content,
    label_names_of,
    tokenize_classification,
    tokenize_seq2seq,
)

__all__ = [
    "KNOWN_DATASETS",
    "DatasetSpec",
    "TaskData",
    "check_label_count",
    "check_texts",
    "check_token_content",
    "get_dataset_spec",
    "label_names_of",
    "load_task_data",
    "load_task_dataset",
    "select_first",
    "split_dataset",
    "tokenize_classification",
    "tokenize_seq2seq",
]
