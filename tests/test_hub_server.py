"""Pushing to and loading from the Hub for real, through huggingface_hub's HTTP client, against the loopback Hub.

Uses the ``loopback_hub`` fixture (tests/conftest.py, server in tests/hub_server.py) and a tiny BERT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertTokenizerFast

from adaptive_zoo.hub.folder import atomic_output_dir, check_hub_folder
from adaptive_zoo.hub.push import iter_upload_files, push_folder

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]  # 99 tokens
INPUT_IDS = [[2, 7, 12, 40, 98, 3]]


def tiny_config() -> BertConfig:
    return BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, num_labels=2)


def tiny_model(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(tiny_config()).eval()


def tiny_tokenizer(tmp_path: Path) -> BertTokenizerFast:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(vocab))


def save_folder(target: Path, model, tokenizer=None) -> Path:
    with atomic_output_dir(target) as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        check_hub_folder(tmp)
    return target


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor(INPUT_IDS)).logits


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("vocab"))


def test_push_folder_then_from_pretrained(loopback_hub, tmp_path, tokenizer):
    model = tiny_model()
    folder = save_folder(tmp_path / "tiny-bert", model, tokenizer)
    (folder / ".hidden").write_text("x")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    (folder / "modeling_extra.py").write_text("X = 1\n")
    (folder / "_private_helper.py").write_text("Y = 2\n")

    url = push_folder(folder, "user/tiny-bert", commit_message="first push")
    oid = url.rsplit("/", 1)[-1]
    assert url == f"{loopback_hub.url}/user/tiny-bert/commit/{oid}"

    remote = loopback_hub.files("user/tiny-bert")
    assert {"config.json", "model.safetensors", "tokenizer.json", "modeling_extra.py", "_private_helper.py"} <= set(remote)
    assert not any(p.startswith(".hidden") or "__pycache__" in p for p in remote)
    assert remote["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    commits = loopback_hub.commits("user/tiny-bert")
    assert [c.title for c in commits] == ["initial commit", "first push"] and commits[-1].oid == oid

    loaded = BertForSequenceClassification.from_pretrained("user/tiny-bert").eval()
    assert same_weights(model, loaded)
    tok = AutoTokenizer.from_pretrained("user/tiny-bert")
    assert tok("w1 w2")["input_ids"] == tokenizer("w1 w2")["input_ids"]

    # the plain huggingface_hub download functions see the same repo
    assert Path(hf_hub_download("user/tiny-bert", "config.json")).read_bytes() == remote["config.json"]
    snap = Path(snapshot_download("user/tiny-bert"))
    assert sorted(p.name for p in snap.iterdir()) == sorted(remote)
    assert str(snap).startswith(str(loopback_hub.hf_home))
    assert HfApi().model_info("user/tiny-bert").sha == oid
    assert loopback_hub.unknown_requests == []


def test_fresh_subprocess_loads_with_empty_cache(loopback_hub, tmp_path, tokenizer):
    model = tiny_model(seed=1)
    push_folder(save_folder(tmp_path / "m", model, tokenizer), "user/sub-bert")
    child_home = tmp_path / "child_home"
    out = tmp_path / "logits.pt"
    script = textwrap.dedent(f"""
        import os, torch
        from pathlib import Path
        from transformers import AutoTokenizer, BertForSequenceClassification
        cache = Path(os.environ["HF_HUB_CACHE"])
        assert not cache.exists() or not any(cache.iterdir()), "cache not empty"
        model = BertForSequenceClassification.from_pretrained("user/sub-bert").eval()
        tok = AutoTokenizer.from_pretrained("user/sub-bert")
        assert tok("w1 w2")["input_ids"] == {tokenizer("w1 w2")["input_ids"]!r}
        with torch.no_grad():
            torch.save(model(input_ids=torch.tensor({INPUT_IDS!r})).logits, {str(out)!r})
        assert (cache / "models--user--sub-bert").is_dir()
    """)
    env = loopback_hub.subprocess_env(hf_home=child_home)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # another process may pick other CPU kernels: 1.9e-9 apart on this machine (the mixin's fresh-process checks
    # allow 1e-6 too)
    torch.testing.assert_close(torch.load(out), logits(model), rtol=0, atol=1e-6)
    assert (child_home / "hub" / "models--user--sub-bert").is_dir()


def test_model_push_to_hub(loopback_hub, tmp_path):
    model = tiny_model(seed=2)
    model.push_to_hub("pushed-bert")  # no namespace: the hub's user (whoami) is used
    remote = loopback_hub.files("user/pushed-bert")
    assert {"config.json", "model.safetensors", "README.md"} <= set(remote)
    assert same_weights(model, BertForSequenceClassification.from_pretrained("user/pushed-bert"))
    # HfApi().upload_folder works too, as one commit (single-commit path: HF_HUB_DISABLE_XET is set)
    n = len(loopback_hub.commits("user/pushed-bert"))
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "notes.txt").write_text("notes\n")
    (docs / "sub" / "more.txt").write_text("more\n")
    HfApi().upload_folder(folder_path=docs, path_in_repo="docs", repo_id="user/pushed-bert")
    remote = loopback_hub.files("user/pushed-bert")
    assert remote["docs/notes.txt"] == b"notes\n" and remote["docs/sub/more.txt"] == b"more\n"
    assert len(loopback_hub.commits("user/pushed-bert")) == n + 1


def test_broken_folder_is_refused_before_upload(loopback_hub, tmp_path, tokenizer):
    folder = save_folder(tmp_path / "good", tiny_model(), tokenizer)
    push_folder(folder, "user/guarded")
    before = loopback_hub.commits("user/guarded")
    n_requests = len(loopback_hub.requests)

    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        push_folder(folder, "user/guarded")
    with pytest.raises(FileNotFoundError, match="config.json"):
        push_folder(folder, "user/never-created")
    assert loopback_hub.commits("user/guarded") == before
    assert len(loopback_hub.requests) == n_requests  # nothing at all was sent
    assert "user/never-created" not in loopback_hub.repo_ids()


def test_check_hub_folder_lists_what_is_missing(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "modeling_x.XModel",
                                                                 "AutoConfig": "configuration_x.XConfig"}}))
    (folder / "configuration_x.py").write_text("")
    (folder / "tokenizer_config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as err:
        check_hub_folder(folder)
    msg = str(err.value)
    assert "modeling_x.py" in msg and "weights" in msg and "tokenizer" in msg and "configuration_x.py" not in msg
    (folder / "config.json").write_text("{not json")
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "vocab.txt").write_text("a\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        check_hub_folder(folder)
    with pytest.raises(FileNotFoundError):
        check_hub_folder(tmp_path / "nope")


def test_atomic_output_dir_cleans_up_and_keeps_old(tmp_path):
    target = tmp_path / "model"
    model = tiny_model()
    save_folder(target, model)
    old_bytes = (target / "model.safetensors").read_bytes()

    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output_dir(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-model-")
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("boom")
    assert (target / "model.safetensors").read_bytes() == old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    save_folder(target, tiny_model(seed=5))  # success replaces the folder, leaves nothing behind
    assert (target / "model.safetensors").read_bytes() != old_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    unrelated = tmp_path / "notes"
    unrelated.mkdir()
    (unrelated / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        with atomic_output_dir(unrelated):
            pass
    assert (unrelated / "todo.txt").read_text() == "keep me"


def test_second_push_is_a_second_commit(loopback_hub, tmp_path):
    first = tiny_model(seed=0)
    folder = save_folder(tmp_path / "m", first)
    url1 = push_folder(folder, "user/twice")
    assert push_folder(folder, "user/twice") == url1  # nothing changed: no empty commit

    second = tiny_model(seed=3)
    save_folder(folder, second)
    url2 = push_folder(folder, "user/twice", commit_message="retrain")
    oid1, oid2 = url1.rsplit("/", 1)[-1], url2.rsplit("/", 1)[-1]
    commits = loopback_hub.commits("user/twice")
    assert [c.oid for c in commits[-2:]] == [oid1, oid2] and commits[-1].title == "retrain"
    assert len(commits) == 3  # initial commit + 2 pushes

    assert same_weights(second, BertForSequenceClassification.from_pretrained("user/twice"))
    assert same_weights(first, BertForSequenceClassification.from_pretrained("user/twice", revision=oid1))
    assert loopback_hub.files("user/twice", revision=oid1)["model.safetensors"] != loopback_hub.files(
        "user/twice")["model.safetensors"]


def test_errors_and_listing(loopback_hub, tmp_path):
    folder = save_folder(tmp_path / "m", tiny_model())
    push_folder(folder, "user/errs", revision="dev")  # a branch is created on the fly
    api = HfApi()
    assert "config.json" in loopback_hub.files("user/errs", revision="dev")
    assert "config.json" not in loopback_hub.files("user/errs")
    assert api.whoami()["name"] == loopback_hub.user
    assert {b.name for b in api.list_repo_refs("user/errs").branches} == {"main", "dev"}
    assert sorted(api.list_repo_files("user/errs", revision="dev")) == sorted(iter_upload_files(folder) + [".gitattributes"])
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("user/errs", "missing.json", revision="dev")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("user/no-such-repo", "config.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("user/errs", "config.json", revision="no-such-branch")
    with pytest.raises(OSError):
        BertForSequenceClassification.from_pretrained("user/no-such-repo")
    assert loopback_hub.unknown_requests == []
    assert os.environ["HF_ENDPOINT"] == loopback_hub.url
