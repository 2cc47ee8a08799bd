"""HashEE's hash tables: a fixed exit layer for every token id, computed once, before training.

HashEE (Sun et al., "A Simple Hash-Based Early Exiting Approach For Language Understanding and Generation",
2022) replaces learned exit decisions with a lookup table: token id -> exit layer. Section 3.3
of the paper proposes several hash functions; `build_hash_table` builds each of them from a corpus (or, for
the clustered hash, from the model's input embeddings) in one call:

* ``"random"`` (the paper's *Rand-cons*): every token id gets a fixed bucket drawn uniformly at random with
  `seed`. Consistent between training and inference.
* ``"random_inconsistent"`` (*Rand-incons*): the model draws a fresh random layer for every occurrence of a
  token, so training and inference disagree. Its table is the same as ``"random"``'s and is only consulted for
  special tokens; the name is recorded so the model knows to draw per occurrence.
* ``"frequency"`` (the paper's *Frequency hash*, its main and best one): tokens are sorted by corpus frequency
  and "divided equally into B buckets": every bucket holds the same number of **distinct** token ids (up to
  one), most frequent -> lowest layer. ``frequency_buckets="mass"`` (or the name ``"frequency_mass"``) is a
  variant that is *not* in the paper: the buckets hold about the same number of token **occurrences**, so the
  few very frequent ids fill the lowest buckets and the long tail shares the highest ones.
* ``"mutual_information"`` (*MI hash*): the mutual information between a token's presence in a text and the
  text's label, sorted and divided equally into B buckets (distinct ids), highest MI -> lowest layer.
* ``"clustered"`` (*Clustered hash*): k-means with B clusters over the input embedding matrix; clusters are
  ordered by the mean L2 norm of their vectors, smallest norm -> lowest layer.

Bucket ``b`` (0-based, of ``B``) exits after layer ``1 + floor(L * b / B)`` (Appendix A.3: 12 layers and 3 buckets
give layers {1, 5, 9}); with ``B == L`` bucket ``b`` exits after layer ``b + 1``. Layers are 1-based: exiting
"after layer l" means the token's hidden state is frozen once layer ``l`` has run.

Ids the hash cannot rank go to a configurable layer (the last one, ``L``, by default, so nothing is cut short
that the corpus did not justify): special tokens (``tokenizer.all_special_ids``) under every hash, and, for the
corpus-based hashes (frequency, MI), ids that never occur in the corpus.

Tables are stored as ``hash_table.safetensors`` (one int64 tensor ``exit_layers`` of vocabulary size, the other
fields as string metadata) with `save_hash_table` / `load_hash_table`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

__all__ = [
    "HASH_FUNCTIONS",
    "HASH_TABLE_FILENAME",
    "HashTable",
    "bucket_exit_layers",
    "build_hash_table",
    "count_token_ids",
    "load_hash_table",
    "mutual_information_scores",
    "save_hash_table",
]

HASH_TABLE_FILENAME = "hash_table.safetensors"
_FORMAT = "adaptive_zoo.hash_table"
_FORMAT_VERSION = "1"

# Name -> one-line description (shown in error messages and the CLI's help).
HASH_FUNCTIONS: dict[str, str] = {
    "random": "fixed random layer per token id (the paper's Rand-cons)",
    "random_inconsistent": "a fresh random layer per occurrence (Rand-incons); the table is random's",
    "frequency": "corpus frequency, equal numbers of distinct ids per bucket (the paper's Frequency hash)",
    "frequency_mass": "corpus frequency, equal numbers of token occurrences per bucket (not in the paper)",
    "mutual_information": "mutual information between token presence and the label (the paper's MI hash)",
    "clustered": "k-means over the input embeddings, clusters ordered by mean norm (the paper's Clustered hash)",
}
_CORPUS_HASHES = ("frequency", "frequency_mass", "mutual_information")
FrequencyBuckets = Literal["distinct", "mass"]
LayerChoice = Literal["last", "first"] | int


def bucket_exit_layers(num_layers: int, num_buckets: int) -> list[int]:
    """Exit layer (1-based) of each bucket: ``[1 + floor(L * b / B) for b in range(B)]`` (paper, Appendix A.3).

    >>> bucket_exit_layers(12, 3)
    [1, 5, 9]
    >>> bucket_exit_layers(6, 6)
    [1, 2, 3, 4, 5, 6]
    """
    _check_layers_and_buckets(num_layers, num_buckets)
    return [1 + (num_layers * b) // num_buckets for b in range(num_buckets)]


def _check_layers_and_buckets(num_layers: int, num_buckets: int) -> None:
    if not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer; got {num_layers!r}.")
    if not isinstance(num_buckets, (int, np.integer)) or not 1 <= num_buckets <= num_layers:
        raise ValueError(
            f"num_buckets must be between 1 and num_layers={num_layers} (each bucket is one exit layer); "
            f"got {num_buckets!r}."
        )


def _resolve_layer(choice: LayerChoice, num_layers: int, what: str) -> int:
    """"last" -> L, "first" -> 1, an int -> itself (checked to be a layer)."""
    if choice == "last":
        return num_layers
    if choice == "first":
        return 1
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool) and 1 <= choice <= num_layers:
        return int(choice)
    raise ValueError(f"{what} must be 'last', 'first' or a layer in [1, {num_layers}]; got {choice!r}.")


# ---------------------------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class HashTable:
    """A token id -> exit layer lookup table.

    Args:
        exit_layers: int64 tensor of shape ``(vocab_size,)``; entry ``i`` is the 1-based layer after which token id
            ``i`` exits, in ``[1, num_layers]``.
        hash_function: the name it was built with (a key of `HASH_FUNCTIONS`).
        num_layers: the number of layers ``L`` of the model it is for.
        num_buckets: the number of buckets ``B``; bucket ``b`` is layer ``bucket_exit_layers(L, B)[b]``.
        vocab_size: the model's vocabulary size (the table's length).
        build_info: how it was built (seed, corpus size, policies for special and unseen ids, ...), for model cards.
    """

    exit_layers: torch.Tensor
    hash_function: str
    num_layers: int
    num_buckets: int
    vocab_size: int
    build_info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.exit_layers = torch.as_tensor(self.exit_layers, dtype=torch.long)
        if self.hash_function not in HASH_FUNCTIONS:
            raise ValueError(f"Unknown hash function {self.hash_function!r}; known: {', '.join(HASH_FUNCTIONS)}.")
        _check_layers_and_buckets(self.num_layers, self.num_buckets)
        if self.exit_layers.shape != (self.vocab_size,):
            raise ValueError(
                f"exit_layers has shape {tuple(self.exit_layers.shape)}; expected ({self.vocab_size},) (vocab_size)."
            )
        if self.vocab_size and (self.exit_layers.min() < 1 or self.exit_layers.max() > self.num_layers):
            raise ValueError(
                f"exit_layers must lie in [1, {self.num_layers}]; found values in "
                f"[{int(self.exit_layers.min())}, {int(self.exit_layers.max())}]."
            )

    @property
    def bucket_layers(self) -> list[int]:
        return bucket_exit_layers(self.num_layers, self.num_buckets)

    def bucket_counts(self) -> dict[int, int]:
        """Number of vocabulary ids per exit layer, for every layer 1..L (layers no bucket uses count 0)."""
        counts = torch.bincount(self.exit_layers, minlength=self.num_layers + 1)
        return {layer: int(counts[layer]) for layer in range(1, self.num_layers + 1)}

    def lookup(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Exit layer of every id in `input_ids` (any shape)."""
        return self.exit_layers.to(input_ids.device)[input_ids]

    def summary(
        self,
        texts: Iterable[str] | None = None,
        *,
        tokenizer=None,
        token_ids: Iterable[Sequence[int]] | None = None,
        max_length: int | None = None,
        add_special_tokens: bool = True,
    ) -> dict[str, Any]:
        """What the table does: ids per layer and, given a corpus, token occurrences per layer and the expected
        mean exit layer of a token (its fraction of ``L`` roughly bounds the share of layer compute kept).

        A corpus is either `texts` with a `tokenizer` (tokenized with special tokens by default, as the model
        sees them) or already tokenized `token_ids`.
        """
        info: dict[str, Any] = {
            "hash_function": self.hash_function,
            "num_layers": self.num_layers,
            "num_buckets": self.num_buckets,
            "vocab_size": self.vocab_size,
            "bucket_layers": self.bucket_layers,
            "ids_per_layer": self.bucket_counts(),
        }
        if texts is not None:
            if tokenizer is None:
                raise ValueError("summary(texts=...) needs the tokenizer that the table was built for.")
            token_ids = _tokenize(texts, tokenizer, max_length=max_length, add_special_tokens=add_special_tokens)
        if token_ids is not None:
            counts = count_token_ids(token_ids, self.vocab_size)
            per_layer = np.bincount(self.exit_layers.numpy(), weights=counts, minlength=self.num_layers + 1)
            total = int(counts.sum())
            info["token_occurrences"] = total
            info["occurrences_per_layer"] = {layer: int(per_layer[layer]) for layer in range(1, self.num_layers + 1)}
            if total:
                mean = float((per_layer * np.arange(self.num_layers + 1)).sum() / total)
                info["mean_exit_layer"] = round(mean, 4)
                info["mean_layer_fraction"] = round(mean / self.num_layers, 4)
        return info


# ---------------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------------


def build_hash_table(
    hash_function: str,
    *,
    tokenizer,
    num_layers: int,
    num_buckets: int,
    texts: Iterable[str] | None = None,
    labels: Sequence[Any] | None = None,
    embeddings: torch.Tensor | np.ndarray | torch.nn.Module | None = None,
    vocab_size: int | None = None,
    seed: int = 0,
    unseen: LayerChoice = "last",
    special: LayerChoice = "last",
    frequency_buckets: FrequencyBuckets = "distinct",
    max_length: int | None = None,
) -> HashTable:
    """Build a HashEE table with one of `HASH_FUNCTIONS` (see the module docstring for each).

    Args:
        hash_function: ``"random"``, ``"random_inconsistent"``, ``"frequency"``, ``"frequency_mass"``,
            ``"mutual_information"`` or ``"clustered"``.
        tokenizer: the model's tokenizer; texts are tokenized without special tokens and truncated to
            `max_length` (default: ``tokenizer.model_max_length``), as the model will see them.
        num_layers: the model's number of layers ``L``.
        num_buckets: ``B``, between 1 and ``L``; the paper's default is ``B == L``.
        texts: the corpus (training texts) for ``frequency``/``frequency_mass``/``mutual_information``.
        labels: one label per text (any hashable values, any number of classes) for ``mutual_information``.
        embeddings: the input embedding matrix ``(vocab_size, hidden)`` for ``clustered``; a tensor, an array, an
            ``nn.Embedding`` or a model with ``get_input_embeddings()``.
        vocab_size: length of the table; defaults to the embedding rows when given, else ``len(tokenizer)``. Must
            be the model's ``config.vocab_size``.
        seed: seeds the random hashes and k-means.
        unseen: layer of ids that never occur in the corpus (corpus-based hashes only): ``"last"`` (default),
            ``"first"`` or a layer number.
        special: layer of ``tokenizer.all_special_ids`` under every hash: ``"last"`` (default), ``"first"`` or a
            layer number.
        frequency_buckets: for ``"frequency"``: ``"distinct"`` (the paper: equal numbers of distinct ids per
            bucket) or ``"mass"`` (equal numbers of token occurrences per bucket; the same as
            ``hash_function="frequency_mass"``, the name the returned table carries).
        max_length: truncation length for the corpus.

    Ties (equal frequency or MI) are broken by token id, smaller first, so a table is a pure function of its inputs.
    """
    if hash_function not in HASH_FUNCTIONS:
        raise ValueError(
            f"Unknown hash function {hash_function!r}; known: "
            + "; ".join(f"{name} ({what})" for name, what in HASH_FUNCTIONS.items())
        )
    _check_layers_and_buckets(num_layers, num_buckets)
    if frequency_buckets not in ("distinct", "mass"):
        raise ValueError(f"frequency_buckets must be 'distinct' (the paper's) or 'mass'; got {frequency_buckets!r}.")
    if hash_function == "frequency" and frequency_buckets == "mass":
        hash_function = "frequency_mass"  # one name per table, so cards and the model can tell the variants apart
    if hash_function == "frequency_mass":
        frequency_buckets = "mass"
    elif hash_function != "frequency":
        if frequency_buckets != "distinct":
            raise ValueError(f"frequency_buckets applies to the frequency hash only, not to {hash_function!r}.")
        frequency_buckets = None
    special_layer = _resolve_layer(special, num_layers, "special")
    unseen_layer = _resolve_layer(unseen, num_layers, "unseen")
    if hash_function in _CORPUS_HASHES and texts is None:
        raise ValueError(f"The {hash_function!r} hash is computed from a corpus: pass `texts` (the training texts).")
    if hash_function == "mutual_information" and labels is None:
        raise ValueError("The 'mutual_information' hash needs `labels` (one per text) to measure MI with the label.")
    if hash_function == "clustered" and embeddings is None:
        raise ValueError(
            "The 'clustered' hash clusters the input embeddings: pass `embeddings` "
            "(e.g. model.get_input_embeddings().weight, or the model itself)."
        )

    embedding_matrix = _embedding_matrix(embeddings) if hash_function == "clustered" else None
    if vocab_size is None:
        vocab_size = embedding_matrix.shape[0] if embedding_matrix is not None else len(tokenizer)
    if embedding_matrix is not None and embedding_matrix.shape[0] != vocab_size:
        raise ValueError(f"The embedding matrix has {embedding_matrix.shape[0]} rows but vocab_size={vocab_size}.")
    if vocab_size < len(tokenizer):
        raise ValueError(
            f"vocab_size={vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens; pass the model's "
            "config.vocab_size."
        )
    special_ids = sorted({i for i in tokenizer.all_special_ids if i is not None and 0 <= i < vocab_size})
    is_special = np.zeros(vocab_size, dtype=bool)
    is_special[special_ids] = True

    layers_of_bucket = np.asarray(bucket_exit_layers(num_layers, num_buckets), dtype=np.int64)
    exit_layers = np.full(vocab_size, unseen_layer, dtype=np.int64)
    info: dict[str, Any] = {"seed": seed, "special": special, "special_layer": special_layer}

    if hash_function in ("random", "random_inconsistent"):
        generator = torch.Generator().manual_seed(seed)
        buckets = torch.randint(0, num_buckets, (vocab_size,), generator=generator).numpy()
        exit_layers = layers_of_bucket[buckets]
    elif hash_function == "clustered":
        exit_layers = layers_of_bucket[_cluster_buckets(embedding_matrix, num_buckets, ~is_special, seed)]
        info["embedding_shape"] = list(embedding_matrix.shape)
    else:
        texts = list(texts)
        if labels is not None and hash_function == "mutual_information" and len(labels) != len(texts):
            raise ValueError(f"Got {len(texts)} texts but {len(labels)} labels; pass one label per text.")
        token_ids = _tokenize(texts, tokenizer, max_length=max_length, add_special_tokens=False)
        counts = count_token_ids(token_ids, vocab_size)
        rankable = (counts > 0) & ~is_special
        if not rankable.any():
            raise ValueError(
                f"The corpus of {len(texts)} texts holds no (non-special) tokens; the {hash_function!r} hash "
                "needs real training texts."
            )
        if hash_function == "mutual_information":
            scores = mutual_information_scores(token_ids, labels, vocab_size)
            order = _rank(scores, rankable)
            info["num_labels"] = int(len(set(_hashable(label) for label in labels)))
        else:
            order = _rank(counts.astype(np.float64), rankable)
        if frequency_buckets == "mass":
            buckets = _mass_buckets(counts[order], num_buckets)
        else:
            buckets = _equal_buckets(len(order), num_buckets)
        exit_layers[order] = layers_of_bucket[buckets]
        info.update(
            num_texts=len(texts),
            token_occurrences=int(counts.sum()),
            distinct_ids_seen=int(rankable.sum()),
            unseen=unseen,
            unseen_layer=unseen_layer,
            max_length=_truncation_length(tokenizer, max_length),
        )
        if frequency_buckets is not None:
            info["frequency_buckets"] = frequency_buckets

    exit_layers[is_special] = special_layer
    return HashTable(
        exit_layers=torch.from_numpy(np.ascontiguousarray(exit_layers)),
        hash_function=hash_function,
        num_layers=int(num_layers),
        num_buckets=int(num_buckets),
        vocab_size=int(vocab_size),
        build_info=info,
    )


def _truncation_length(tokenizer, max_length: int | None) -> int | None:
    if max_length is not None:
        return int(max_length)
    model_max = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    return int(model_max) if model_max is not None and model_max < 10**6 else None


def _tokenize(
    texts: Iterable[str], tokenizer, *, max_length: int | None, add_special_tokens: bool, chunk: int = 1000
) -> list[list[int]]:
    length = _truncation_length(tokenizer, max_length)
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"Text #{index} is not a string: {text!r}.")
    token_ids: list[list[int]] = []
    for start in range(0, len(texts), chunk):
        encoded = tokenizer(
            texts[start : start + chunk],
            add_special_tokens=add_special_tokens,
            truncation=length is not None,
            max_length=length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        token_ids.extend(encoded["input_ids"])
    return token_ids


def count_token_ids(token_ids: Iterable[Sequence[int]], vocab_size: int) -> np.ndarray:
    """Occurrences of every id ``0..vocab_size-1`` over a tokenized corpus (int64 array of length vocab_size)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for ids in token_ids:
        if len(ids):
            ids = np.asarray(ids, dtype=np.int64)
            if ids.min() < 0 or ids.max() >= vocab_size:
                raise ValueError(f"Token id {int(ids.max())} is outside the vocabulary of size {vocab_size}.")
            counts += np.bincount(ids, minlength=vocab_size)
    return counts


def _hashable(label: Any) -> Any:
    return label.item() if hasattr(label, "item") else label


def mutual_information_scores(token_ids: Sequence[Sequence[int]], labels: Sequence[Any], vocab_size: int) -> np.ndarray:
    """MI (in nats) between "token id t occurs in the text" (a binary variable per text) and the text's label.

    For every id, with N texts, ``n_xy`` the number of texts with presence ``x`` in {0, 1} and label ``y``:
    ``MI(t) = sum_{x, y} (n_xy / N) * log(N * n_xy / (n_x * n_y))``, terms with ``n_xy = 0`` being 0. Presence is
    counted per text (document frequency), not per occurrence. Ids that never occur get MI 0.
    """
    if len(token_ids) != len(labels):
        raise ValueError(f"Got {len(token_ids)} tokenized texts but {len(labels)} labels.")
    if not len(labels):
        raise ValueError("Mutual information needs at least one labelled text.")
    _, label_index = np.unique(np.asarray([_hashable(label) for label in labels], dtype=object).astype(str),
                               return_inverse=True)
    num_classes = int(label_index.max()) + 1
    total = len(labels)
    # present[t, y]: texts of class y that contain t.
    present = np.zeros((vocab_size, num_classes), dtype=np.float64)
    for ids, label in zip(token_ids, label_index):
        present[np.unique(np.asarray(ids, dtype=np.int64)), label] += 1
    class_sizes = np.bincount(label_index, minlength=num_classes).astype(np.float64)  # n_y
    absent = class_sizes[None, :] - present  # texts of class y without t
    mi = np.zeros(vocab_size, dtype=np.float64)
    for joint in (present, absent):
        marginal = joint.sum(axis=1, keepdims=True)  # n_x
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = joint / total * np.log(total * joint / (marginal * class_sizes[None, :]))
        mi += np.where(joint > 0, terms, 0.0).sum(axis=1)
    return np.maximum(mi, 0.0)  # remove -1e-17 rounding noise


def _rank(scores: np.ndarray, rankable: np.ndarray) -> np.ndarray:
    """Ids with `rankable` set, sorted by score descending, ties by id ascending."""
    ids = np.flatnonzero(rankable)
    # Round so that scores equal in exact arithmetic but not in floating point tie (and fall back to the id).
    keys = np.round(scores[ids], 12)
    return ids[np.lexsort((ids, -keys))]


def _equal_buckets(num_ids: int, num_buckets: int) -> np.ndarray:
    """Bucket of each rank when `num_ids` ranked ids are divided equally: rank r -> floor(r * B / n).
    Bucket sizes differ by at most one; the earlier buckets are never the larger ones."""
    return (np.arange(num_ids) * num_buckets) // num_ids


def _mass_buckets(sorted_counts: np.ndarray, num_buckets: int) -> np.ndarray:
    """Bucket of each rank so that buckets hold about equal numbers of occurrences: an id goes to the bucket in
    which its occurrences start, floor(B * (occurrences of all higher-ranked ids) / total). A single id holding
    more than 1/B of the mass leaves the next buckets empty."""
    before = np.concatenate([[0], np.cumsum(sorted_counts)[:-1]])
    return np.minimum((before * num_buckets) // int(sorted_counts.sum()), num_buckets - 1)


def _embedding_matrix(embeddings) -> np.ndarray:
    if hasattr(embeddings, "get_input_embeddings"):
        embeddings = embeddings.get_input_embeddings()
    if isinstance(embeddings, torch.nn.Embedding):
        embeddings = embeddings.weight
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach().float().cpu().numpy()
    matrix = np.asarray(embeddings, dtype=np.float64)
    if matrix.ndim != 2 or not matrix.size:
        raise ValueError(f"embeddings must be a (vocab_size, hidden) matrix; got shape {matrix.shape}.")
    return matrix


def _cluster_buckets(matrix: np.ndarray, num_buckets: int, use: np.ndarray, seed: int) -> np.ndarray:
    """k-means (B clusters) over the rows in `use`, clusters ranked by mean row norm ascending; rows not used
    (special tokens) get bucket B-1 and are overwritten by the caller."""
    from sklearn.cluster import KMeans  # lazy: scikit-learn is heavy (~1 s) and only the clustered hash needs it

    rows = matrix[use]
    if len(rows) < num_buckets:
        raise ValueError(f"Cannot form {num_buckets} clusters from {len(rows)} embedding rows.")
    kmeans = KMeans(n_clusters=num_buckets, random_state=seed, n_init=3)
    assignment = kmeans.fit_predict(rows)
    norms = np.linalg.norm(rows, axis=1)
    mean_norms = np.array([norms[assignment == c].mean() if (assignment == c).any() else np.inf
                           for c in range(num_buckets)])
    rank_of_cluster = np.empty(num_buckets, dtype=np.int64)
    rank_of_cluster[np.argsort(mean_norms, kind="stable")] = np.arange(num_buckets)
    buckets = np.full(len(matrix), num_buckets - 1, dtype=np.int64)
    buckets[use] = rank_of_cluster[assignment]
    return buckets


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------------------------------


def _table_file(path: str | os.PathLike) -> Path:
    """A folder means `<folder>/hash_table.safetensors`; a path ending in .safetensors is the file itself."""
    path = Path(path)
    return path if path.suffix == ".safetensors" else path / HASH_TABLE_FILENAME


def save_hash_table(table: HashTable, path: str | os.PathLike) -> Path:
    """Write `table` to ``<path>/hash_table.safetensors`` (or to `path` if it ends in ``.safetensors``), atomically:
    a temporary file in the same folder is renamed over the target, so readers never see half a file.
    Returns the file written."""
    target = _table_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "hash_function": table.hash_function,
        "num_layers": str(table.num_layers),
        "num_buckets": str(table.num_buckets),
        "vocab_size": str(table.vocab_size),
        "build_info": json.dumps(table.build_info, sort_keys=True, default=str),
    }
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        save_file({"exit_layers": table.exit_layers.contiguous().to(torch.long)}, temporary, metadata=metadata)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def load_hash_table(
    path: str | os.PathLike, *, vocab_size: int | None = None, num_layers: int | None = None
) -> HashTable:
    """Read a table written by `save_hash_table` (a folder holding ``hash_table.safetensors``, or the file).

    `vocab_size` / `num_layers`, when given (the model's ``config.vocab_size`` / ``config.num_hidden_layers``),
    are checked against the table: a table built for another model is a ValueError, not a silent misuse.
    """
    target = _table_file(path)
    if not target.is_file():
        raise FileNotFoundError(
            f"No hash table at {target}. Build one with `adaptive-zoo hash build ...` or "
            "`adaptive_zoo.hashing.build_hash_table(...)` followed by `save_hash_table(table, folder)`."
        )
    try:
        with safe_open(str(target), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if "exit_layers" not in handle.keys():
                raise ValueError(f"{target} holds no 'exit_layers' tensor; it is not a hash table.")
            exit_layers = handle.get_tensor("exit_layers")
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{target} is not a readable safetensors file ({error}); rebuild the hash table.") from error
    if metadata.get("format") != _FORMAT:
        raise ValueError(f"{target} is not an adaptive_zoo hash table (metadata format={metadata.get('format')!r}).")
    try:
        fields = {key: int(metadata[key]) for key in ("num_layers", "num_buckets", "vocab_size")}
        hash_function = metadata["hash_function"]
        build_info = json.loads(metadata.get("build_info", "{}"))
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{target} has corrupt hash-table metadata ({error!r}): {metadata}.") from error
    if vocab_size is not None and fields["vocab_size"] != vocab_size:
        raise ValueError(
            f"The hash table at {target} is for a vocabulary of {fields['vocab_size']} ids but the model has "
            f"vocab_size={vocab_size}; build a table with the model's tokenizer."
        )
    if num_layers is not None and fields["num_layers"] != num_layers:
        raise ValueError(
            f"The hash table at {target} is for num_layers={fields['num_layers']} but the model has "
            f"num_layers={num_layers}; build a table for this model."
        )
    try:
        return HashTable(exit_layers=exit_layers, hash_function=hash_function, build_info=build_info, **fields)
    except ValueError as error:
        raise ValueError(f"{target} is not a valid hash table: {error}") from error

