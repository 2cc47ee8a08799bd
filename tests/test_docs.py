"""The README's "which model for what" table and BENCHMARKS.md's summary are generated from benchmarks/results.jsonl
by `adaptive-zoo summarize-benchmarks`: a figure edited by hand, or rows added without rerunning it, fails here. Every
generated link points at a section that exists, and the first screens stay short. Nothing here trains or measures."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from adaptive_zoo.cli import main
from adaptive_zoo.evaluation.benchmark_results import (
    CHOICE_BLOCK,
    SUMMARY_BLOCK,
    VERDICTS,
    current_runs,
    generated_markers,
    read_rows,
    section_heading,
    stale_blocks,
    verdict,
    verdict_word,
    write_generated,
)

ROOT = Path(__file__).resolve().parents[1]
README, BENCHMARKS, RESULTS = ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "benchmarks" / "results.jsonl"


def block(text: str, name: str) -> str:
    start, end = generated_markers(name)
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_generated_tables_are_what_summarize_benchmarks_writes_from_the_current_rows():
    assert stale_blocks(read_rows(RESULTS), BENCHMARKS, README, ROOT / "benchmarks") == [], (
        "run `adaptive-zoo summarize-benchmarks` (the generated tables differ from the results file)")


def test_summarize_benchmarks_check_passes_on_the_repository(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["summarize-benchmarks", "--check"]) == 0


@pytest.mark.parametrize("name, path", [(CHOICE_BLOCK, README), (SUMMARY_BLOCK, BENCHMARKS)])
def test_a_figure_edited_by_hand_is_caught(tmp_path, name, path, capsys):
    for source in (README, BENCHMARKS):
        shutil.copy(source, tmp_path / source.name)
    edited = tmp_path / path.name
    text = edited.read_text()
    figure = re.search(r"\d+\.\d\dx", block(text, name)).group()
    start = text.index(generated_markers(name)[0])
    edited.write_text(text[:start] + text[start:].replace(figure, "9.99x", 1))
    rows = read_rows(RESULTS)
    assert stale_blocks(rows, tmp_path / "BENCHMARKS.md", tmp_path / "README.md", tmp_path / "benchmarks") == [edited]
    assert main(["summarize-benchmarks", "--results", str(RESULTS), "--markdown", str(tmp_path / "BENCHMARKS.md"),
                 "--plots-dir", str(tmp_path / "benchmarks"), "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    write_generated(rows, tmp_path / "BENCHMARKS.md", tmp_path / "README.md",
                    [tmp_path / "benchmarks" / f"pareto_{d}.png" for d in sorted({r["dataset"] for r in rows})])
    assert edited.read_text() == path.read_text()  # rewritten from the rows: the generated block is the repo's again


def test_the_readme_table_has_one_row_per_current_run_and_links_to_its_section():
    runs = current_runs(read_rows(RESULTS))
    table = block(README.read_text(), CHOICE_BLOCK)
    rows = [line for line in table.splitlines() if line.startswith("| [")]
    assert len(rows) == len(runs)
    headings = {line.strip() for line in BENCHMARKS.read_text().splitlines() if line.startswith("#")}
    for run, row in zip(runs, rows):
        method, dataset = run[0]["method"], run[0]["dataset"]
        assert section_heading(method, dataset) in headings, f"BENCHMARKS.md has no section for {method} on {dataset}"
        assert f"(BENCHMARKS.md#{method}-on-{dataset})" in row
        assert f"| **{verdict_word(verdict(run))}** |" in row
    assert {verdict_word(verdict(run)) for run in runs} <= set(VERDICTS)


def test_the_first_screens_are_short():
    readme = README.read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.index("## Which model for what") < readme.index("## Using a trained model")
    assert generated_markers(SUMMARY_BLOCK)[0] in "\n".join(BENCHMARKS.read_text().splitlines()[:30])
    for command in ("python3 -m venv .venv && . .venv/bin/activate && bash scripts/setup.sh && adaptive-zoo quickstart",
                    "python3 -m venv .venv && . .venv/bin/activate && bash scripts/test.sh"):
        assert command in readme


def test_relative_links_of_the_readme_and_docs_resolve():
    for page in (README, BENCHMARKS, *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+://", target):
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


# -- model cards: the measured table first, then the zoo's Pareto plot of the dataset, then usage ------------------

CARDS = ROOT / "src" / "adaptive_zoo" / "model_cards"


@pytest.mark.parametrize("family", ["deebert", "adapler", "hashee", "dat"])
def test_cards_open_with_the_measured_table_then_the_plot_then_usage(family):
    text = (CARDS / f"{family}.md").read_text()
    results, plot, usage = (text.index(part) for part in ("## Results (", "{% if pareto_image %}", "## How to use"))
    assert text.index("# {{ model_name }}") < results < plot < usage < text.index("## Model details")
    assert "measured on {{ hardware }}; runtime: {{ runtime }}" in text


def test_a_bundled_dataset_s_pareto_plot_is_copied_into_the_folder(tmp_path):
    from adaptive_zoo.recipes import BENCHMARKS_DIR, copy_pareto_plot

    assert copy_pareto_plot("bbc_news", tmp_path) == "pareto_bbc_news.png"
    assert (tmp_path / "pareto_bbc_news.png").read_bytes() == (BENCHMARKS_DIR / "pareto_bbc_news.png").read_bytes()
    assert copy_pareto_plot("aclsum", tmp_path) is None  # bundled, never benchmarked: no plot
    (tmp_path / "bbc_news.csv").write_text("text,label\n")
    assert copy_pareto_plot(str(tmp_path / "bbc_news.csv"), tmp_path) is None  # a local file, not the bundled data


def test_a_rendered_card_states_hardware_runtime_and_shows_the_plot():
    from adaptive_zoo.hub.cards import hardware_description, render_model_card, runtime_description

    results = {"num_samples": 210, "batch_size": 32, "vanilla_accuracy": 0.981, "accuracy": 0.9762,
               "flops_speedup": 3.62, "wallclock_speedup": 3.33, "latency_speedup": 3.37,
               "exit": {"mean_exit_layer": 1.7, "histogram": [150, 30, 10, 10, 5, 5]}}
    card = render_model_card(
        "deebert", model_name="deebert-minilm-bbc_news", base_model=None, dataset_name="bbc_news", eval_results=[],
        tags=["deebert"], results=results, eval_split="test", num_layers=6, threshold_text="0.248",
        vanilla_class="BertForSequenceClassification", repo_id="OWNER/deebert-minilm-bbc_news", label_names=["a"],
        training={"max_length": 128}, sweep_image=None, pareto_image="pareto_bbc_news.png",
        runtime=runtime_description())
    text = card.text
    assert text.index("## Results") < text.index("![Pareto plot: bbc_news](pareto_bbc_news.png)") < text.index(
        "## How to use")
    assert f"measured on {hardware_description()}; runtime: PyTorch " in text  # CPU model and instruction set
    assert "runtime: PyTorch " in text and "eager, float32" in text
    assert "97.62" in text and "3.62x" in text
