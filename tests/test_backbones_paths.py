"""Paths read from a folder's own metadata stay inside the folder (modules.json, a sharded index's weight_map,
auto_map), and writing a folder leaves the process umask alone (issue 34: one model served from many threads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaptive_zoo.backbones import sentence_embedding_pooling
from adaptive_zoo.hub import folder as hub_folder
from adaptive_zoo.hub.folder import atomic_output_dir, check_hub_folder, check_weights_intact, path_in_folder


def sentence_transformers_folder(root: Path, pooling_path: str) -> Path:
    model = root / "model"
    model.mkdir(parents=True)
    (model / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": pooling_path, "type": "sentence_transformers.models.Pooling"},
    ]))
    return model


def write_pooling(folder: Path, mean: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": mean,
                                                   "pooling_mode_cls_token": not mean}))


def test_pooling_read_from_inside_the_folder(tmp_path):
    model = sentence_transformers_folder(tmp_path, "1_Pooling")
    write_pooling(model / "1_Pooling", mean=False)
    assert sentence_embedding_pooling(model) == "cls"


def test_absolute_pooling_path_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    write_pooling(outside, mean=True)
    model = sentence_transformers_folder(tmp_path, str(outside))
    with pytest.raises(ValueError, match=r"modules.json \(module 1.*absolute path.*elsewhere") as error:
        sentence_embedding_pooling(model)
    assert str(model) in str(error.value)


def test_dot_dot_pooling_path_is_refused(tmp_path):
    write_pooling(tmp_path / "elsewhere", mean=True)
    model = sentence_transformers_folder(tmp_path, "../elsewhere")
    with pytest.raises(ValueError, match=r"'\.\./elsewhere'.*climbs out"):
        sentence_embedding_pooling(model)


def test_pooling_folder_symlinked_outside_is_refused(tmp_path):
    write_pooling(tmp_path / "elsewhere", mean=True)
    model = sentence_transformers_folder(tmp_path, "1_Pooling")
    (model / "1_Pooling").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ValueError, match=r"'1_Pooling'.*symlink leads outside"):
        sentence_embedding_pooling(model)


def test_symlink_inside_the_folder_is_followed(tmp_path):
    model = sentence_transformers_folder(tmp_path, "1_Pooling")
    write_pooling(model / "pooling_real", mean=True)
    (model / "1_Pooling").symlink_to(model / "pooling_real", target_is_directory=True)
    assert sentence_embedding_pooling(model) == "mean"


def test_hub_cache_snapshot_links_into_its_blobs_are_followed(tmp_path):
    repo = tmp_path / "models--owner--name"
    blob = repo / "blobs" / "0123abcd"
    blob.parent.mkdir(parents=True)
    blob.write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    model = sentence_transformers_folder(repo / "snapshots", "1_Pooling")  # repo/snapshots/model
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").symlink_to(blob)
    assert sentence_embedding_pooling(model) == "mean"


def test_missing_pooling_config_names_what_is_missing_and_what_works(tmp_path):
    model = sentence_transformers_folder(tmp_path, "1_Pooling")
    with pytest.raises(FileNotFoundError, match=r"1_Pooling.*config.json is missing.*remove modules.json"):
        sentence_embedding_pooling(model)


@pytest.mark.parametrize("entry", [None, "", 3])
def test_a_path_that_is_no_path_is_refused(tmp_path, entry):
    with pytest.raises(ValueError, match="relative path inside the folder"):
        path_in_folder(tmp_path, entry, named_in="modules.json")


def sharded_folder(folder: Path, shard: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": shard}}))
    return folder


@pytest.mark.parametrize("shard, message", [
    ("/etc/hostname", "absolute path"),
    ("../outside.safetensors", "climbs out"),
])
def test_index_shards_outside_the_folder_are_refused(tmp_path, shard, message):
    (tmp_path / "outside.safetensors").write_bytes(b"\0" * 16)
    folder = sharded_folder(tmp_path / "model", shard)
    with pytest.raises(ValueError, match=f"weight_map of model.safetensors.index.json.*{message}"):
        check_weights_intact(folder)
    with pytest.raises(ValueError, match=message):
        check_hub_folder(folder)


def test_index_shard_symlinked_outside_is_refused(tmp_path):
    (tmp_path / "outside.safetensors").write_bytes(b"\0" * 16)
    folder = sharded_folder(tmp_path / "model", "model-00001.safetensors")
    (folder / "model-00001.safetensors").symlink_to(tmp_path / "outside.safetensors")
    with pytest.raises(ValueError, match="symlink leads outside"):
        check_weights_intact(folder)


def test_auto_map_module_outside_the_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "evil.py").write_text("")
    (folder / "config.json").write_text(json.dumps({"auto_map": {"AutoConfig": "sub.conf.Config"}}))
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "sub").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "conf.py").write_text("")
    with pytest.raises(ValueError, match=r"auto_map of config.json.*'sub/conf.py'.*symlink leads outside"):
        check_hub_folder(folder, require_weights=False)


def proc_umask() -> int | None:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1], 8) for line in lines if line.startswith("Umask:")), None)


def test_atomic_output_dir_never_sets_the_umask(tmp_path, monkeypatch):
    """os.umask can only be read by setting it, which changes the mode of what other threads create meanwhile."""
    before = proc_umask()

    def no_umask(*args):
        raise AssertionError("os.umask called: it changes process-wide state")

    monkeypatch.setattr(hub_folder.os, "umask", no_umask)
    with atomic_output_dir(tmp_path / "out") as tmp:
        (tmp / "config.json").write_text("{}")
    umask = hub_folder.current_umask()
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask
    if before is not None:
        assert umask == before == proc_umask()


def test_current_umask_without_proc_matches(monkeypatch):
    expected = hub_folder.current_umask()
    real_read_text = Path.read_text

    def no_proc(self, *args, **kwargs):
        if str(self).startswith("/proc/"):
            raise OSError("no /proc here")
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_proc)
    assert hub_folder.current_umask() == expected
