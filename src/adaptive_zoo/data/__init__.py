"""Task datasets: bundled real data (no Hub needed), local files, and Hub ids behind one loader."""

from .registry import (
    KNOWN_DATASETS,
    DatasetSpec,
    TaskData,
    get_dataset_spec,
    load_task_data,
    load_task_dataset,
)
from .splits import select_first, split_dataset

__all__ = [
    "KNOWN_DATASETS",
    "DatasetSpec",
    "TaskData",
    "get_dataset_spec",
    "load_task_data",
    "load_task_dataset",
    "select_first",
    "split_dataset",
]
