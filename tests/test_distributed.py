"""Training runs unchanged on more than one process: `torchrun --nproc_per_node 2` on CPU (gloo DDP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from adaptive_zoo.hub.folder import check_hub_folder


def test_torchrun_two_processes_train_and_write_one_folder(tmp_path, tiny_bert_dir, tiny_csv):
    output_dir = tmp_path / "deebert-ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "adaptive_zoo.cli", "train", "deebert", "--dataset", str(tiny_csv), "--text-column", "sentence",
        "--label-column", "category", "--base-model", str(tiny_bert_dir), "--output-dir", str(output_dir),
        "--max-length", "32", "--num-train-epochs", "1", "--off-ramp-epochs", "1", "--batch-size", "8",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    check_hub_folder(output_dir, require_tokenizer=True)
    record = json.loads((output_dir / "adaptive_zoo_results.json").read_text())
    assert record["training"]["world_size"] == 2
    assert not any(p.name.startswith((".tmp", ".old")) for p in tmp_path.iterdir())
