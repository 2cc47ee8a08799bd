"""`adaptive-zoo loadtest` (one model, many request threads, every answer checked against a sequential reference),
and what a server calls leaving process-wide state alone (issue 34)."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import pytest
import test_deebert as deebert_tests  # a module name pytest does not collect again
import torch
from test_backbones_paths import proc_umask
from tiny import TEXTS, save_tiny_tokenizer
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from adaptive_zoo import loadtest
from adaptive_zoo.cli import main as cli_main
from adaptive_zoo.evaluation.classification import accuracy_of


@pytest.fixture(scope="module")
def deebert_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_deebert")
    tester = deebert_tests.DeeBertModelTester()
    tokenizer = save_tiny_tokenizer(folder)
    model = tester.create_model()
    tester.make_adaptive(model, tokenizer(list(TEXTS), padding=True, return_tensors="pt"))
    model.save_pretrained(folder)
    return folder


SHORT = ["--threads", "2", "--seconds", "1", "--requests", "8", "--max-batch-size", "4", "--max-requests", "40"]


def last_json_line(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_load_test_passes_on_a_tiny_deebert(deebert_folder, tmp_path, capsys):
    output = tmp_path / "results.jsonl"
    status = loadtest.main([str(deebert_folder), *SHORT, "--no-attentions", "--output", str(output)])
    result = last_json_line(capsys.readouterr().out)
    assert status == 0, result
    assert result["passed"] and result["mismatches"] == 0 and result["errors"] == 0
    assert 0 < result["requests"] <= 40 and result["rows"] >= result["requests"]
    assert set(result["kinds"]) == {"forward", "hidden_states", "pipeline"}
    assert result["rss_mb"]["after_warmup"] is not None
    assert json.loads(output.read_text().splitlines()[-1])["requests"] == result["requests"]


def test_adaptive_model_refusing_attentions_is_said_and_left_out(deebert_folder, capsys):
    status = loadtest.main([str(deebert_folder), *SHORT, "--no-pipeline"])
    result = last_json_line(capsys.readouterr().out)
    assert status == 0, result
    assert "attentions" not in result["kinds"]
    assert any("output_attentions left out" in note and "--full-depth" in note for note in result["notes"])


def test_a_model_answering_differently_under_threads_fails(deebert_folder, monkeypatch, capsys):
    """The check itself: an answer that changes off the main thread is a mismatch, and exit status 1 (the CLI)."""
    answer = loadtest.Served.answer

    def drifting(self, request):
        output = answer(self, request)
        if threading.current_thread() is not threading.main_thread() and request.kind == "forward":
            output.logits = output.logits + 1e-6
        return output

    monkeypatch.setattr(loadtest.Served, "answer", drifting)
    status = cli_main(["loadtest", str(deebert_folder), *SHORT, "--no-attentions", "--no-pipeline"])
    out = capsys.readouterr().out
    result = last_json_line(out)
    assert status == 1
    assert result["mismatches"] > 0 and not result["passed"]
    assert "output.logits:" in out and "differ, the largest by" in out


def test_compare_is_exact_and_treats_nan_as_equal():
    reference = loadtest.fingerprint({"logits": torch.tensor([[0.5, math.nan]]), "exits": torch.tensor([1, 2]),
                                      "pipe": [[{"label": "a", "score": 0.25}]]})
    same = {"logits": torch.tensor([[0.5, math.nan]]), "exits": torch.tensor([1, 2]),
            "pipe": [[{"label": "a", "score": 0.25}]]}
    assert loadtest.compare(reference, same) == []
    off = {**same, "logits": torch.tensor([[0.5 + 2**-20, math.nan]]), "pipe": [[{"label": "b", "score": 0.25}]]}
    problems = loadtest.compare(reference, off)
    assert len(problems) == 2 and problems[0].startswith("output.logits: 1 of 2 elements differ")
    assert loadtest.compare(reference, {**same, "exits": torch.tensor([1, 2, 3])})[0].startswith("output.exits:")


def test_large_tensors_are_compared_by_digest(monkeypatch):
    monkeypatch.setattr(loadtest, "KEEP_WHOLE_BYTES", 0)
    reference = loadtest.fingerprint(torch.tensor([1.0, -0.0, math.nan]))
    assert reference.tensor is None
    assert loadtest.compare(reference, torch.tensor([1.0, 0.0, math.nan])) == []
    assert loadtest.compare(reference, torch.tensor([1.0, 1e-30, math.nan])) != []


def test_loading_serving_and_evaluating_leave_process_state_alone(deebert_folder):
    """What a server calls (load, forward, an evaluation helper, the load test) must not seed or draw from the
    global RNG, nor change the default dtype, the thread count or the umask. A pipeline called with a list is left
    out of the RNG check: its torch DataLoader draws a base seed from the global RNG on every call (transformers'
    and torch's doing, not the model's); it does not seed it, and the other settings are checked after it too."""
    torch.manual_seed(1234)
    before = (torch.get_rng_state(), torch.get_default_dtype(), torch.get_num_threads(), proc_umask())
    model = AutoModelForSequenceClassification.from_pretrained(deebert_folder, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(deebert_folder)
    with torch.inference_mode():
        model(**tokenizer(list(TEXTS), padding=True, return_tensors="pt"), output_hidden_states=True)
    accuracy_of(model, tokenizer, list(TEXTS), [0] * len(TEXTS), batch_size=4, max_length=64)
    loadtest.run_load_test(loadtest.LoadTestSettings(str(deebert_folder), threads=2, seconds=0.3, requests=4,
                                                     max_batch_size=2, max_requests=8, attentions=False,
                                                     pipeline_calls=False))
    after = (torch.get_rng_state(), torch.get_default_dtype(), torch.get_num_threads(), proc_umask())
    assert torch.equal(before[0], after[0]), "the global torch RNG was seeded or drawn from"
    assert before[1:] == after[1:]
    pipeline("text-classification", model=model, tokenizer=tokenizer)(list(TEXTS[:2]), top_k=None)
    assert (torch.get_default_dtype(), torch.get_num_threads(), proc_umask()) == before[1:]


def test_the_serving_doc_table_is_the_recorded_results():
    """docs/serving.md's table is generated from benchmarks/loadtest.jsonl: a hand-edited or stale figure fails."""
    from adaptive_zoo.loadtest import TABLE_MARKERS, results_table

    root = Path(__file__).resolve().parents[1]
    rows = [json.loads(line) for line in (root / "benchmarks" / "loadtest.jsonl").read_text().splitlines() if line]
    assert rows and all(row["passed"] for row in rows)
    text = (root / "docs" / "serving.md").read_text()
    block = text.split(TABLE_MARKERS[0], 1)[1].split(TABLE_MARKERS[1], 1)[0]
    assert block.strip() == results_table(rows)
