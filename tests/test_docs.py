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
