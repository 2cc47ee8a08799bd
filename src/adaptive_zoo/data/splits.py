"""Seeded train/validation/test splitting shared by the bundled and the local datasets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict

SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


def can_stratify(dataset: Dataset, column: str | None) -> bool:
    """Only `ClassLabel` columns are stratified on."""
    return column is not None and isinstance(dataset.features.get(column), ClassLabel)


def holdout_indices(
    dataset: Dataset, sizes: Sequence[float], *, seed: int = 42, stratify_by_column: str | None = None
) -> list[np.ndarray]:
    """Shuffled row indices for the remainder followed by one held-out part per fraction in `sizes`.

    Written here rather than using `Dataset.train_test_split` so a seed gives the same split whatever the
    `datasets` version (and because its stratified path reads the label column row by row, which is slow).
    Stratification rounds each class's share separately, so tiny classes may land entirely in the remainder.
    """
    rng = np.random.default_rng(seed)
    if can_stratify(dataset, stratify_by_column):
        labels = np.asarray(dataset.select_columns([stratify_by_column])[:][stratify_by_column])
        groups = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    else:
        groups = [np.arange(len(dataset))]
    parts: list[list[np.ndarray]] = [[] for _ in range(len(sizes) + 1)]
    for group in groups:
        group = rng.permutation(group)
        start = 0
        for i, size in enumerate(sizes, start=1):
            count = int(round(size * len(group)))
            parts[i].append(group[start : start + count])
            start += count
        parts[0].append(group[start:])
    return [rng.permutation(np.concatenate(chunks)) for chunks in parts]


def split_dataset(
    dataset: Dataset,
    *,
    seed: int = 42,
    validation_size: float = 0.1,
    test_size: float = 0.1,
    stratify_by_column: str | None = None,
) -> DatasetDict:
    """Split one dataset into `train`/`validation`/`test`, stratified when the column is a `ClassLabel`."""
    if not (0 < validation_size < 1 and 0 < test_size < 1 and validation_size + test_size < 1):
        raise ValueError(
            f"validation_size ({validation_size}) and test_size ({test_size}) must be in (0, 1) and sum to less "
            "than 1."
        )
    train, validation, test = holdout_indices(
        dataset, (validation_size, test_size), seed=seed, stratify_by_column=stratify_by_column
    )
    return DatasetDict(
        train=dataset.select(train), validation=dataset.select(validation), test=dataset.select(test)
    )


def ensure_splits(
    dataset_dict: DatasetDict,
    *,
    seed: int = 42,
    validation_size: float = 0.1,
    test_size: float = 0.1,
    stratify_by_column: str | None = None,
) -> DatasetDict:
    """Give any `DatasetDict` the three standard splits, carving missing ones out of `train`."""
    dataset_dict = DatasetDict({SPLIT_ALIASES.get(name, name): split for name, split in dataset_dict.items()})
    if len(dataset_dict) == 1:
        (only,) = dataset_dict.values()
        return split_dataset(
            only,
            seed=seed,
            validation_size=validation_size,
            test_size=test_size,
            stratify_by_column=stratify_by_column,
        )
    if "train" not in dataset_dict:
        raise ValueError(f"Cannot build splits without a 'train' split; found {sorted(dataset_dict)}.")
    out = DatasetDict(dataset_dict)
    for missing, size in (("validation", validation_size), ("test", test_size)):
        if missing in out:
            continue
        train = out["train"]
        keep, held_out = holdout_indices(train, (size,), seed=seed, stratify_by_column=stratify_by_column)
        out["train"], out[missing] = train.select(keep), train.select(held_out)
    return DatasetDict({name: out[name] for name in ("train", "validation", "test")})


def select_first(dataset: Dataset | DatasetDict, n: int | None) -> Dataset | DatasetDict:
    """Keep the first `n` rows (of every split) for quick runs; `None` keeps everything."""
    if n is None:
        return dataset
    if isinstance(dataset, DatasetDict):
        return DatasetDict({name: select_first(split, n) for name, split in dataset.items()})
    return dataset.select(range(min(n, len(dataset))))
