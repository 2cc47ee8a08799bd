"""Writing and checking Hub model folders.

- :func:`atomic_output_dir`: write a model folder next to its destination and switch it in only when complete,
  so a crash halfway through ``save_pretrained`` never leaves a half-written folder where a good one was.
- :func:`check_hub_folder`: refuse a folder that could not be loaded from the Hub (no ``config.json``, no
  weights, a Python file named in ``auto_map`` missing, ...) before it is pushed or loaded.
- :func:`path_in_folder`: a path read from a folder's own metadata (``modules.json``, an index's ``weight_map``,
  ``auto_map``), checked to stay inside the folder.

Nothing here changes process-wide state (the umask is read, never set): a server may call these from any thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = [
    "MODEL_FOLDER_MARKERS",
    "WEIGHTS_FILES",
    "TOKENIZER_FILES",
    "atomic_output_dir",
    "check_hub_folder",
    "check_weights_intact",
    "current_umask",
    "is_model_folder",
    "path_in_folder",
]

#: Single-file weights and sharded indexes, in the order transformers looks for them.
WEIGHTS_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

#: Files holding a tokenizer's vocabulary; at least one must be present when a tokenizer is shipped.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)

#: Any of these makes a folder recognisable as an (adaptive-zoo / Hugging Face) model folder.
MODEL_FOLDER_MARKERS = (
    "config.json",
    *WEIGHTS_FILES,
    "tokenizer_config.json",
    "tokenizer.json",
    "generation_config.json",
    "adapter_config.json",
    "training_args.bin",
)


def is_model_folder(path: str | os.PathLike) -> bool:
    """True if ``path`` is a directory holding at least one of :data:`MODEL_FOLDER_MARKERS`."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in MODEL_FOLDER_MARKERS)


def path_in_folder(folder: str | os.PathLike, entry: object, *, named_in: str) -> Path:
    """``folder / entry`` for a relative path `entry` read from the folder's own metadata file `named_in`
    (e.g. ``"modules.json (module 1)"``); a ValueError naming the file, the entry and the folder when the path
    would lead outside the folder: an absolute path, one that climbs out with ``..``, or one that a symlink
    (of the entry or of a folder on its way) points outside. The file need not exist.

    One exception, for folders of the Hugging Face cache: a ``snapshots/<revision>`` folder holds symlinks into
    the repo's ``blobs`` folder beside it; those are followed.
    """
    folder = Path(folder)
    where = f"{named_in} in {folder}"
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"{where} names {entry!r} where a relative path inside the folder is expected.")
    posix = entry.replace("\\", "/")
    if posix.startswith("/") or os.path.isabs(entry) or re.match(r"^[A-Za-z]:", posix):
        raise ValueError(f"{where} names the absolute path {entry!r}; only paths inside {folder} are read. "
                         "Write it relative to the folder.")
    normal = os.path.normpath(posix)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{where} names {entry!r}, which climbs out of {folder} with '..'; only paths inside the "
                         "folder are read.")
    candidate = folder / normal
    root = folder.resolve()
    resolved = candidate.resolve()
    blobs = root.parent.parent / "blobs" if root.parent.name == "snapshots" else None
    if not (resolved.is_relative_to(root) or (blobs is not None and resolved.is_relative_to(blobs))):
        raise ValueError(f"{where} names {entry!r}, which a symlink leads outside the folder (to {resolved}); only "
                         f"files inside {folder} are read. Copy the file into the folder instead of linking it.")
    return candidate


def current_umask() -> int:
    """The process umask, read without setting it (``os.umask`` can only be read by setting it, which changes the
    mode of files other threads create in the meantime): the ``Umask:`` line of /proc/self/status (Linux), else
    the mode a directory created with 0o777 gets."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / "probe"
        probe.mkdir(mode=0o777)
        return 0o777 & ~stat.S_IMODE(probe.stat().st_mode)


def _check_replaceable(target: Path) -> None:
    if not target.exists() and not target.is_symlink():
        return
    if target.is_symlink() or not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a directory; refusing to replace it")
    if any(target.iterdir()) and not is_model_folder(target):
        raise FileExistsError(
            f"{target} exists, is not empty and does not look like a model folder (none of "
            f"{', '.join(MODEL_FOLDER_MARKERS[:3])}, ...); refusing to replace it"
        )


@contextlib.contextmanager
def atomic_output_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``target``; switch it in as ``target`` on success.

    The directory is created in ``target``'s parent as ``.tmp-<name>-<random>`` (same filesystem, so the final
    switch is a rename). On normal exit an existing ``target`` is renamed aside to ``.old-<name>-<random>``, the
    new folder is renamed to ``target`` and the old one is deleted; the window without a ``target`` is two
    renames wide. If the block raises (``KeyboardInterrupt`` included), the temporary directory is deleted and
    any previous ``target`` is left untouched.

    An existing ``target`` must be an empty directory or a model folder (see :func:`is_model_folder`); anything
    else raises ``FileExistsError`` before the block runs, so a mistyped path never wipes unrelated files.

    Example::

        with atomic_output_dir("runs/deebert-bbc") as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            check_hub_folder(tmp)
    """
    target = Path(target).absolute()
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    _check_replaceable(target)

    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=parent))
    old: Path | None = None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    try:
        # mkdtemp makes the directory 0o700; give the result the permissions a plain mkdir would have.
        os.chmod(tmp, 0o777 & ~current_umask())
        _check_replaceable(target)  # it may have changed while the block ran
        if target.exists():
            old = parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:
                os.replace(old, target)  # put the previous folder back
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _auto_map_files(auto_map: object) -> list[str]:
    """Python files referenced by an ``auto_map`` (``"module.Class"``, or lists of them for tokenizers)."""
    refs: list[str] = []

    def visit(value: object) -> None:
        if isinstance(value, str):
            refs.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)

    visit(auto_map)
    files = []
    for ref in refs:
        if "--" in ref:  # "other/repo--module.Class": code that lives in another repo
            continue
        module = ref.rsplit(".", 1)[0] if "." in ref else ref
        name = module.replace(".", "/") + ".py"
        if name not in files:
            files.append(name)
    return files


def _safetensors_problem(path: Path) -> str | None:
    """What is wrong with a safetensors file, reading only its header: a file cut short (an interrupted download or
    copy) is shorter than the header says; None if its size is the one the header describes."""
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"{size} bytes, shorter than a safetensors header"
            header_size = int.from_bytes(prefix, "little")
            if header_size > size - 8:
                return f"{size:,} bytes, but its header alone is said to be {header_size:,}"
            header = json.loads(handle.read(header_size))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return f"unreadable header ({error})"
    if not isinstance(header, dict):
        return "unreadable header (not a JSON object)"
    ends = [entry["data_offsets"][1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets", ())) == 2]
    expected = 8 + header_size + max(ends, default=0)
    if size != expected:
        return f"{size:,} bytes where its header describes {expected:,}"
    return None


def check_weights_intact(path: str | os.PathLike) -> None:
    """Raise ValueError("model.safetensors in FOLDER is truncated or corrupt ...") when a safetensors weights file of
    the folder (or a shard its index names) does not have the size its header describes. Reads headers only."""
    path = Path(path)
    files = {"model.safetensors": path / "model.safetensors"} if (path / "model.safetensors").is_file() else {}
    index = path / "model.safetensors.index.json"
    if not files and index.is_file():
        try:
            names = set((_read_json(index).get("weight_map") or {}).values())
        except (ValueError, AttributeError, TypeError):
            names = set()  # check_hub_folder reports a malformed index
        # Shard names come from the folder's own index: a name leading outside the folder is a ValueError.
        files = {name: path_in_folder(path, name, named_in="the weight_map of model.safetensors.index.json")
                 for name in names}
    for name, shard in sorted(files.items(), key=lambda item: str(item[0])):
        if not shard.is_file():
            continue
        problem = _safetensors_problem(shard)
        if problem is not None:
            raise ValueError(f"{name} in {path} is truncated or corrupt ({problem}); download or save the model "
                             "again.")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def check_hub_folder(
    path: str | os.PathLike,
    required: Iterable[str] = ("config.json",),
    *,
    require_weights: bool = True,
    require_tokenizer: bool = False,
) -> None:
    """Raise if the folder at ``path`` could not be loaded from the Hub; return ``None`` if it is complete.

    Checked, with every problem listed in one message:

    - each name in ``required`` exists (default: ``config.json``);
    - ``config.json`` (and ``tokenizer_config.json``) parse as JSON objects;
    - weights (when ``require_weights``): ``model.safetensors`` or ``model.safetensors.index.json`` (or the
      ``pytorch_model.bin`` equivalents), and every shard an index names; safetensors files have the size their
      header describes (:func:`check_weights_intact`: a truncated download or copy is caught here);
    - the Python files named in the ``auto_map`` of ``config.json`` and ``tokenizer_config.json``
      (``trust_remote_code`` loading imports them from the repo);
    - tokenizer files: when ``tokenizer_config.json`` is present or ``require_tokenizer`` is true, one of
      ``tokenizer.json`` / ``vocab.txt`` (or another vocabulary file in :data:`TOKENIZER_FILES`).

    Raises:
        FileNotFoundError: the folder or files are missing (the message lists all of them).
        ValueError: a JSON file is malformed, a sharded index is inconsistent, or a weights file is truncated.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"Hub folder {path} does not exist or is not a directory")

    missing: list[str] = []
    invalid: list[str] = []
    for name in required:
        if not (path / name).is_file():
            missing.append(name)

    auto_map_files: list[str] = []
    for cfg_name in ("config.json", "tokenizer_config.json"):
        cfg_path = path / cfg_name
        if not cfg_path.is_file():
            continue
        try:
            cfg = _read_json(cfg_path)
        except ValueError as e:
            invalid.append(str(e))
            continue
        for name in _auto_map_files(cfg.get("auto_map") or {}):
            try:
                path_in_folder(path, name, named_in=f"the auto_map of {cfg_name}")
            except ValueError as e:
                invalid.append(str(e))
                continue
            if name not in auto_map_files:
                auto_map_files.append(name)

    if require_weights:
        present = [name for name in WEIGHTS_FILES if (path / name).is_file()]
        if not present:
            missing.append("a weights file (model.safetensors or model.safetensors.index.json with its shards)")
        for index_name in (n for n in present if n.endswith(".index.json")):
            single = index_name[: -len(".index.json")]
            if single in present:
                continue  # transformers loads the single file first; the index is not used
            try:
                weight_map = _read_json(path / index_name).get("weight_map")
            except ValueError as e:
                invalid.append(str(e))
                continue
            if not isinstance(weight_map, dict) or not weight_map:
                invalid.append(f"{path / index_name} has no 'weight_map'")
                continue
            for shard in sorted(set(weight_map.values()), key=str):
                try:
                    shard_path = path_in_folder(path, shard, named_in=f"the weight_map of {index_name}")
                except ValueError as e:
                    invalid.append(str(e))
                    continue
                if not shard_path.is_file():
                    missing.append(f"{shard} (shard named in {index_name})")

    for name in auto_map_files:
        if not (path / name).is_file():
            missing.append(f"{name} (named in auto_map)")

    if require_tokenizer or (path / "tokenizer_config.json").is_file():
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            missing.append("tokenizer files (tokenizer.json or vocab.txt)")

    if missing:
        detail = f"; also invalid: {'; '.join(invalid)}" if invalid else ""
        raise FileNotFoundError(f"Hub folder {path} is incomplete; missing: {'; '.join(missing)}{detail}")
    if invalid:
        raise ValueError(f"Hub folder {path} is invalid: {'; '.join(invalid)}")
    if require_weights:
        check_weights_intact(path)
