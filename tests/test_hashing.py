"""HashEE hash tables (adaptive_zoo.hashing): every hash function on crafted inputs with hand-computed tables."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tiny import VOCAB

from adaptive_zoo.hashing import (
    HASH_FUNCTIONS,
    HASH_TABLE_FILENAME,
    HashTable,
    bucket_exit_layers,
    build_hash_table,
    load_hash_table,
    mutual_information_scores,
    save_hash_table,
)

SPECIAL_IDS = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK]


def w(i: int) -> int:
    """Id of the tiny vocabulary's word `w{i}`."""
    return VOCAB.index(f"w{i}")


# Counts: w0 6, w1 4, w2 2, w3 1, w4 1, w5 1 (15 occurrences, 6 distinct ids).
FREQUENCY_CORPUS = ["w0 w0 w0 w0 w1 w1 w1 w2 w2 w3", "w0 w0 w1 w4 w5"]


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def build(name, tokenizer, **kwargs):
    kwargs.setdefault("num_layers", 3)
    kwargs.setdefault("num_buckets", 3)
    return build_hash_table(name, tokenizer=tokenizer, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Bucket -> layer
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_layers, num_buckets, expected",
    [(12, 3, [1, 5, 9]), (6, 6, [1, 2, 3, 4, 5, 6]), (6, 3, [1, 3, 5]), (6, 4, [1, 2, 4, 5]), (6, 1, [1]),
     (12, 12, list(range(1, 13)))],
)
def test_bucket_exit_layers_follow_appendix_a3(num_layers, num_buckets, expected):
    assert bucket_exit_layers(num_layers, num_buckets) == expected
    assert bucket_exit_layers(num_layers, num_buckets) == [
        1 + math.floor(num_layers * b / num_buckets) for b in range(num_buckets)
    ]


def test_bucket_exit_layers_match_the_hashee_config_when_present():
    if importlib.util.find_spec("adaptive_zoo.models.hashee") is None:
        pytest.skip("adaptive_zoo.models.hashee is not there yet")
    from adaptive_zoo.models.hashee.configuration_hashee import bucket_exit_layers as config_formula

    for num_layers in range(1, 13):
        for num_buckets in range(1, num_layers + 1):
            assert config_formula(num_layers, num_buckets) == bucket_exit_layers(num_layers, num_buckets)


# ---------------------------------------------------------------------------------------------------------------
# Frequency
# ---------------------------------------------------------------------------------------------------------------


def test_frequency_divides_distinct_ids_equally(tokenizer):
    table = build("frequency", tokenizer, texts=FREQUENCY_CORPUS)
    # Ranked w0, w1, w2, w3, w4, w5 (ties by id); rank r -> bucket floor(3 r / 6).
    expected = {w(0): 1, w(1): 1, w(2): 2, w(3): 2, w(4): 3, w(5): 3}
    assert {i: int(table.exit_layers[i]) for i in expected} == expected
    assert table.hash_function == "frequency" and table.vocab_size == len(VOCAB) == 99
    assert table.build_info["frequency_buckets"] == "distinct"
    assert table.build_info["token_occurrences"] == 15 and table.build_info["distinct_ids_seen"] == 6


def test_frequency_mass_buckets_hold_equal_occurrences(tokenizer):
    table = build("frequency", tokenizer, texts=FREQUENCY_CORPUS, frequency_buckets="mass")
    # Occurrences before each rank: 0, 6, 10, 12, 13, 14 of 15 -> bucket floor(3 * before / 15) = 0, 1, 2, 2, 2, 2.
    expected = {w(0): 1, w(1): 2, w(2): 3, w(3): 3, w(4): 3, w(5): 3}
    assert {i: int(table.exit_layers[i]) for i in expected} == expected
    assert table.hash_function == "frequency_mass"
    same = build("frequency_mass", tokenizer, texts=FREQUENCY_CORPUS)
    assert torch.equal(same.exit_layers, table.exit_layers)
    # Distinct-id buckets put both of the two most frequent ids at layer 1; mass buckets give w0 layer 1 alone.
    distinct = build("frequency", tokenizer, texts=FREQUENCY_CORPUS)
    corpus = distinct.summary(FREQUENCY_CORPUS, tokenizer=tokenizer, add_special_tokens=False)
    assert corpus["occurrences_per_layer"] == {1: 10, 2: 3, 3: 2}
    assert table.summary(FREQUENCY_CORPUS, tokenizer=tokenizer, add_special_tokens=False)[
        "occurrences_per_layer"] == {1: 6, 2: 4, 3: 5}


def test_buckets_map_to_appendix_layers_with_fewer_buckets_than_layers(tokenizer):
    table = build("frequency", tokenizer, texts=FREQUENCY_CORPUS, num_layers=6, num_buckets=3)
    assert [int(table.exit_layers[w(i)]) for i in range(6)] == [1, 1, 3, 3, 5, 5]
    assert int(table.exit_layers[w(50)]) == 6  # unseen -> last layer
    assert table.bucket_counts() == {1: 2, 2: 0, 3: 2, 4: 0, 5: 2, 6: 99 - 6}


def test_special_and_unseen_ids_go_to_the_last_layer_by_default(tokenizer):
    # A literal "[SEP]" in a text is a special token: counted nowhere, ranked nowhere.
    table = build("frequency", tokenizer, texts=FREQUENCY_CORPUS + ["[SEP] [SEP] [SEP] [SEP] [SEP] [SEP] [SEP]"])
    assert table.exit_layers[SPECIAL_IDS].tolist() == [3] * 5
    assert int(table.exit_layers[w(0)]) == 1
    unseen = [i for i in range(99) if i not in SPECIAL_IDS and i not in {w(k) for k in range(6)}]
    assert set(table.exit_layers[unseen].tolist()) == {3}


def test_special_and_unseen_layers_are_configurable(tokenizer):
    table = build("frequency", tokenizer, texts=FREQUENCY_CORPUS, special="first", unseen=2)
    assert table.exit_layers[SPECIAL_IDS].tolist() == [1] * 5
    assert int(table.exit_layers[w(60)]) == 2
    assert int(table.exit_layers[w(5)]) == 3  # seen ids keep their bucket
    with pytest.raises(ValueError, match="special must be"):
        build("frequency", tokenizer, texts=FREQUENCY_CORPUS, special=4)
    with pytest.raises(ValueError, match="unseen must be"):
        build("frequency", tokenizer, texts=FREQUENCY_CORPUS, unseen="middle")


def test_corpus_is_truncated(tokenizer):
    table = build("frequency", tokenizer, texts=["w0 w1 w2 w3 w4 w5"], max_length=2)
    assert table.build_info["distinct_ids_seen"] == 2
    assert int(table.exit_layers[w(2)]) == 3  # beyond max_length: unseen


# ---------------------------------------------------------------------------------------------------------------
# Mutual information
# ---------------------------------------------------------------------------------------------------------------

MI_TEXTS = ["w0 w1", "w0 w2", "w1 w3", "w2 w3 w3"]
MI_LABELS = ["A", "A", "B", "B"]


def test_mutual_information_values_by_hand(tokenizer):
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in MI_TEXTS]
    scores = mutual_information_scores(ids, MI_LABELS, 99)
    # w0 occurs exactly in the A texts, w3 exactly in the B texts: presence determines the label, MI = ln 2.
    # w1 and w2 occur once in each class: independent of the label, MI = 0. Unseen ids: 0.
    assert scores[w(0)] == pytest.approx(math.log(2)) and scores[w(3)] == pytest.approx(math.log(2))
    assert scores[w(1)] == pytest.approx(0, abs=1e-12) and scores[w(2)] == pytest.approx(0, abs=1e-12)
    assert scores[w(40)] == 0


def test_mutual_information_matches_sklearn_with_three_classes():
    from sklearn.metrics import mutual_info_score

    generator = np.random.default_rng(0)
    token_ids = [list(generator.integers(5, 30, size=generator.integers(1, 8))) for _ in range(60)]
    labels = list(generator.integers(0, 3, size=60))
    scores = mutual_information_scores(token_ids, labels, 99)
    for token in range(5, 30):
        presence = [int(token in ids) for ids in token_ids]
        assert scores[token] == pytest.approx(mutual_info_score(labels, presence), abs=1e-12)


def test_mutual_information_table(tokenizer):
    table = build("mutual_information", tokenizer, texts=MI_TEXTS, labels=MI_LABELS, num_layers=2, num_buckets=2)
    # Ranked w0, w3 (MI ln 2, ties by id), then w1, w2 (MI 0); divided equally into 2 buckets.
    assert [int(table.exit_layers[w(i)]) for i in range(4)] == [1, 2, 2, 1]
    assert table.build_info["num_labels"] == 2
    assert int(table.exit_layers[w(9)]) == 2 and table.exit_layers[SPECIAL_IDS].tolist() == [2] * 5


# ---------------------------------------------------------------------------------------------------------------
# Clustered
# ---------------------------------------------------------------------------------------------------------------


def crafted_embeddings() -> tuple[torch.Tensor, dict[int, int]]:
    """Three tight, well-separated groups along different axes with norms 1, 5 and 10; group of id i is i % 3."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 10, 0, 0], [1, 0, 0, 0], [0, 0, 5, 0]])  # groups 0, 1, 2: norms 10, 1, 5
    embeddings = torch.randn(99, 4, generator=generator) * 0.01
    group = {i: i % 3 for i in range(99)}
    for i in range(99):
        embeddings[i] += centres[group[i]]
    return embeddings, group


@pytest.mark.parametrize("form", ["tensor", "array", "module"])
def test_clustered_orders_clusters_by_norm(tokenizer, form):
    embeddings, group = crafted_embeddings()
    source = {"tensor": embeddings, "array": embeddings.numpy(),
              "module": torch.nn.Embedding.from_pretrained(embeddings)}[form]
    table = build("clustered", tokenizer, embeddings=source)
    layer_of_group = {1: 1, 2: 2, 0: 3}  # norm 1 -> layer 1, norm 5 -> layer 2, norm 10 -> layer 3
    for i in range(5, 99):
        assert int(table.exit_layers[i]) == layer_of_group[group[i]], i
    assert table.exit_layers[SPECIAL_IDS].tolist() == [3] * 5


def test_clustered_reads_a_models_input_embeddings(tiny_bert_dir, tokenizer):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_bert_dir)
    table = build("clustered", tokenizer, embeddings=model, num_layers=4, num_buckets=4)
    assert table.vocab_size == 99 and set(table.exit_layers.tolist()) <= {1, 2, 3, 4}


# ---------------------------------------------------------------------------------------------------------------
# Random
# ---------------------------------------------------------------------------------------------------------------


def test_random_is_seeded_and_consistent(tokenizer):
    first = build("random", tokenizer, num_layers=6, num_buckets=3, seed=1)
    again = build("random", tokenizer, num_layers=6, num_buckets=3, seed=1)
    other = build("random", tokenizer, num_layers=6, num_buckets=3, seed=2)
    assert torch.equal(first.exit_layers, again.exit_layers)
    assert not torch.equal(first.exit_layers, other.exit_layers)
    words = first.exit_layers[5:]
    assert set(words.tolist()) == {1, 3, 5}  # every bucket is used on 94 ids
    assert first.exit_layers[SPECIAL_IDS].tolist() == [6] * 5
    inconsistent = build("random_inconsistent", tokenizer, num_layers=6, num_buckets=3, seed=1)
    assert inconsistent.hash_function == "random_inconsistent"
    assert torch.equal(inconsistent.exit_layers, first.exit_layers)


# ---------------------------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------------------------


def test_input_errors(tokenizer):
    with pytest.raises(ValueError, match="Unknown hash function 'md5'.*frequency.*mutual_information"):
        build("md5", tokenizer)
    with pytest.raises(ValueError, match="num_buckets must be between 1 and num_layers=3"):
        build("random", tokenizer, num_buckets=4)
    with pytest.raises(ValueError, match="num_buckets"):
        build("random", tokenizer, num_buckets=0)
    with pytest.raises(ValueError, match="needs `labels`"):
        build("mutual_information", tokenizer, texts=MI_TEXTS)
    with pytest.raises(ValueError, match="one label per text"):
        build("mutual_information", tokenizer, texts=MI_TEXTS, labels=["A"])
    with pytest.raises(ValueError, match="pass `embeddings`"):
        build("clustered", tokenizer)
    with pytest.raises(ValueError, match="pass `texts`"):
        build("frequency", tokenizer)
    with pytest.raises(ValueError, match="holds no"):
        build("frequency", tokenizer, texts=["", "[CLS] [SEP]"])
    with pytest.raises(ValueError, match="frequency_buckets"):
        build("frequency", tokenizer, texts=FREQUENCY_CORPUS, frequency_buckets="equal")
    with pytest.raises(ValueError, match="frequency hash only"):
        build("random", tokenizer, frequency_buckets="mass")
    with pytest.raises(ValueError, match="vocab_size=50 is smaller"):
        build("random", tokenizer, vocab_size=50)
    assert set(HASH_FUNCTIONS) == {"random", "random_inconsistent", "frequency", "frequency_mass",
                                   "mutual_information", "clustered"}


def test_vocab_size_may_exceed_the_tokenizer(tokenizer):
    table = build("frequency", tokenizer, texts=FREQUENCY_CORPUS, vocab_size=104)  # a padded embedding matrix
    assert table.vocab_size == 104 and table.exit_layers[99:].tolist() == [3] * 5


def test_summary_reports_mean_exit_layer(tokenizer):
    table = build("frequency", tokenizer, texts=FREQUENCY_CORPUS)
    summary = table.summary(token_ids=[[w(0), w(0), w(2), w(5)]])
    assert summary["occurrences_per_layer"] == {1: 2, 2: 1, 3: 1}
    assert summary["mean_exit_layer"] == pytest.approx(7 / 4) and summary["mean_layer_fraction"] == pytest.approx(
        round(7 / 12, 4))
    # With special tokens, as the model sees the text: [CLS] w0 w0 [SEP] -> 3, 1, 1, 3.
    assert table.summary(["w0 w0"], tokenizer=tokenizer)["mean_exit_layer"] == 2.0
    assert table.summary()["ids_per_layer"] == table.bucket_counts()


# ---------------------------------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------------------------------


def test_save_load_round_trip(tokenizer, tmp_path):
    table = build("mutual_information", tokenizer, texts=MI_TEXTS, labels=MI_LABELS, num_layers=2, num_buckets=2)
    written = save_hash_table(table, tmp_path / "model")
    assert written == tmp_path / "model" / HASH_TABLE_FILENAME
    assert [p.name for p in (tmp_path / "model").iterdir()] == [HASH_TABLE_FILENAME]  # no temp file left over
    loaded = load_hash_table(tmp_path / "model", vocab_size=99, num_layers=2)
    assert torch.equal(loaded.exit_layers, table.exit_layers) and loaded.exit_layers.dtype == torch.long
    assert (loaded.hash_function, loaded.num_layers, loaded.num_buckets, loaded.vocab_size) == (
        "mutual_information", 2, 2, 99)
    assert loaded.build_info == table.build_info
    # A path ending in .safetensors is the file itself; saving again replaces it.
    save_hash_table(table, tmp_path / "custom.safetensors")
    save_hash_table(table, tmp_path / "custom.safetensors")
    assert torch.equal(load_hash_table(tmp_path / "custom.safetensors").exit_layers, table.exit_layers)


def test_load_errors(tokenizer, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*adaptive-zoo hash build"):
        load_hash_table(tmp_path / "nowhere")
    table = build("random", tokenizer)
    save_hash_table(table, tmp_path)
    with pytest.raises(ValueError, match="vocabulary of 99 ids but the model has vocab_size=30522"):
        load_hash_table(tmp_path, vocab_size=30522)
    with pytest.raises(ValueError, match="num_layers=3 but the model has num_layers=6"):
        load_hash_table(tmp_path, num_layers=6)

    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / HASH_TABLE_FILENAME).write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_hash_table(tmp_path / "garbage")

    def write(name, metadata, tensors=None):
        folder = tmp_path / name
        folder.mkdir()
        save_file(tensors or {"exit_layers": torch.ones(99, dtype=torch.long)}, str(folder / HASH_TABLE_FILENAME),
                  metadata=metadata)
        return folder

    good = {"format": "adaptive_zoo.hash_table", "format_version": "1", "hash_function": "random",
            "num_layers": "3", "num_buckets": "3", "vocab_size": "99", "build_info": "{}"}
    assert load_hash_table(write("ok", good)).vocab_size == 99
    with pytest.raises(ValueError, match="not an adaptive_zoo hash table"):
        load_hash_table(write("other", {"format": "pt"}))
    with pytest.raises(ValueError, match="corrupt hash-table metadata"):
        load_hash_table(write("bad_int", {**good, "num_layers": "three"}))
    with pytest.raises(ValueError, match="corrupt hash-table metadata"):
        load_hash_table(write("no_name", {k: v for k, v in good.items() if k != "hash_function"}))
    with pytest.raises(ValueError, match="corrupt hash-table metadata"):
        load_hash_table(write("bad_json", {**good, "build_info": "{oops"}))
    with pytest.raises(ValueError, match="not a valid hash table.*exit_layers must lie in"):
        load_hash_table(write("bad_values", good, {"exit_layers": torch.full((99,), 7, dtype=torch.long)}))
    with pytest.raises(ValueError, match="not a valid hash table.*shape"):
        load_hash_table(write("bad_shape", good, {"exit_layers": torch.ones(98, dtype=torch.long)}))
    with pytest.raises(ValueError, match="no 'exit_layers' tensor"):
        load_hash_table(write("no_tensor", good, {"layers": torch.ones(99, dtype=torch.long)}))


def test_hash_table_validates_itself():
    with pytest.raises(ValueError, match="Unknown hash function"):
        HashTable(torch.ones(3, dtype=torch.long), "sha", 2, 2, 3)
    with pytest.raises(ValueError, match=r"lie in \[1, 2\]"):
        HashTable(torch.zeros(3, dtype=torch.long), "random", 2, 2, 3)
