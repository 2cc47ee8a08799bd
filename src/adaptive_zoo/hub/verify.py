"""Check that a saved folder (or Hub repo id) loads where adaptive-zoo is NOT installed: a fresh Python process
in which `import adaptive_zoo` fails, loading through the Auto classes with `trust_remote_code=True`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from ..progress import announce

# Runs in the child process. `sys.modules[name] = None` makes any import of the package raise ImportError, so
# only the code shipped in the folder can be used.
_CHILD = r"""
import json, sys
sys.modules["adaptive_zoo"] = None
import torch
from transformers import AutoTokenizer, {auto_class}
source, texts, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
model = {auto_class}.from_pretrained(source, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
with torch.inference_mode():
    outputs = model(**tokenizer(texts, return_tensors="pt", padding=True, truncation=True))
main_output = outputs.logits if hasattr(outputs, "logits") else outputs.last_hidden_state
json.dump({{"class": type(model).__module__ + "." + type(model).__name__,
           "logits": main_output.tolist(),
           "exit_layers": outputs.exit_layers.tolist() if getattr(outputs, "exit_layers", None) is not None else None}},
          open(out, "w"))
"""


def load_in_fresh_process(
    source: str | os.PathLike,
    texts: Sequence[str],
    *,
    auto_class: str = "AutoModelForSequenceClassification",
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> dict:
    """Load `source` in a child process without adaptive-zoo and return its logits (the last hidden state for
    a backbone) and exit layers."""
    if Path(source).exists():  # the child runs elsewhere: a relative folder must not turn into a repo id
        source = Path(source).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "outputs.json"
        result = subprocess.run(
            [sys.executable, "-c", _CHILD.format(auto_class=auto_class), os.fspath(source), json.dumps(list(texts)), str(out)],
            cwd=tmp, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            raise RuntimeError(f"Loading {source} in a fresh process failed:\n{result.stderr[-4000:]}")
        return json.loads(out.read_text())


def verify_fresh_process_load(model, tokenizer, source: str | os.PathLike, texts: Sequence[str], **kwargs) -> dict:
    """Compare a fresh process's outputs for `texts` with this process's `model`; raise if they differ."""
    announce(f"checking that {source} loads in a fresh Python process without adaptive-zoo (trust_remote_code) and "
             f"gives the same outputs on {len(texts)} texts")
    child = load_in_fresh_process(source, texts, **kwargs)
    model.eval()
    with torch.inference_mode():
        outputs = model(**tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True))
    if "adaptive_zoo" in child["class"]:
        raise RuntimeError(f"The fresh process used the installed package ({child['class']}), not the shipped code.")
    max_diff = float((torch.tensor(child["logits"]) - outputs.logits).abs().max())
    same_exits = child["exit_layers"] is None or child["exit_layers"] == outputs.exit_layers.tolist()
    if max_diff > 1e-5 or not same_exits:
        raise RuntimeError(f"Fresh-process outputs differ: max |logit diff| {max_diff:.3g}, same exits: {same_exits}.")
    return {"class": child["class"], "max_abs_logit_diff": max_diff, "same_exit_layers": same_exits}
