"""One model, many requests: a load test of a saved folder served from many threads (issue 34).

    python -m adaptive_zoo.loadtest FOLDER --threads 8 --seconds 60
    adaptive-zoo loadtest FOLDER --threads 8 --seconds 60

A web service loads one model and calls it from many request threads. This loads ONE model from FOLDER (with
``trust_remote_code=True``) and one ``pipeline("text-classification", model=model, tokenizer=tokenizer)`` around
it, builds a seeded mix of requests, computes every request's answer sequentially first (the reference), then
calls the shared model and pipeline from ``--threads`` threads for ``--seconds`` and compares every threaded
answer EXACTLY with its reference: every tensor of the output (logits, exit layers, kept tokens, ramp logits,
every attention and hidden-state tensor; NaN where the reference has NaN), the pipeline's labels and scores,
generated token ids. It reports requests and rows per second, the count of requests, mismatches and errors (the
first few with details), and the resident memory at start, after warm-up and at the end. The exit status is 1 when
any answer differed, any request raised, or the memory grew past warm-up by more than ``--max-rss-growth-mb``.

The request mix (``--requests`` distinct requests, drawn with ``--seed``):

* classifiers: batch sizes 1..``--max-batch-size``; texts from 3 tokens to twice the model's input length (those
  are truncated); plain forward calls, ``output_hidden_states=True``, ``output_attentions=True`` (unless
  ``--no-attentions``; the model is then loaded with ``attn_implementation="eager"``, which is what returns
  attention weights, and a model that refuses eager is loaded as it is and the flag left out, which the report
  says), and pipeline calls with ``top_k=None``;
* seq2seq folders (Depth-Adaptive Transformer, HashEE-BART): greedy ``generate`` with the same batch and length
  mix, its token ids compared.

Texts are decoded from random token ids of the folder's own tokenizer (any vocabulary works), or with
``--dataset`` the texts of a bundled dataset or local file (its first rows, shuffled with the seed).

What it does not change: torch's intra-op thread pool is process-wide and shared by all request threads (it is
left as it is; set OMP_NUM_THREADS / torch.set_num_threads in the process that embeds the model if wanted); the
global RNG is never seeded (a ``random.Random`` of our own draws the mix). Every request tokenizes with the same
settings (padding to the longest, truncation at the input length): a fast tokenizer switches its backend's
padding and truncation state when they change between calls, which is not safe across threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

from .data import load_task_data

try:  # only read where /proc/self/status is not there
    import psutil
except ImportError:  # pragma: no cover - psutil is optional
    psutil = None

__all__ = ["LoadTestSettings", "add_arguments", "compare", "main", "resident_memory_mb", "results_table",
           "run_load_test", "write_results_table"]

# Reference tensors larger than this are kept as a digest only (their exactness is still checked, bit for bit
# after NaN and -0.0 are made canonical); smaller ones are kept whole, so that a mismatch reports its largest
# difference.
KEEP_WHOLE_BYTES = 1 << 20
MISMATCH_DETAILS = 5


@dataclasses.dataclass
class LoadTestSettings:
    folder: str | None
    threads: int = 8
    seconds: float = 60.0
    requests: int = 48
    max_batch_size: int = 8
    seed: int = 0
    attentions: bool = True
    hidden_states: bool = True
    pipeline_calls: bool = True
    max_requests: int | None = None  # all threads together; None: as many as --seconds allows
    full_depth: bool = False  # load with config adaptive=False (attentions need every row at every layer)
    max_rss_growth_mb: float = 64.0
    max_new_tokens: int = 8
    dataset: str | None = None
    output: str | None = None


# -- memory ------------------------------------------------------------------------------------------------------


def resident_memory_mb() -> float | None:
    """This process's resident memory (VmRSS of /proc/self/status, else psutil), in MiB; None if neither works."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    if psutil is None:
        return None
    return psutil.Process().memory_info().rss / 2**20


# -- exact comparison --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Fingerprint:
    """A reference tensor: dtype, shape and a digest of its canonical bytes; the tensor itself when small."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    digest: str
    tensor: torch.Tensor | None


def _canonical(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach().cpu().contiguous()
    if tensor.is_floating_point():
        tensor = torch.where(tensor.isnan(), torch.full_like(tensor, math.nan), tensor + 0.0)  # -0.0 -> 0.0
    return tensor


def _digest(tensor: torch.Tensor) -> str:
    canonical = _canonical(tensor)
    view = canonical.view(torch.uint8) if canonical.numel() and canonical.dtype != torch.bool else canonical
    return hashlib.blake2b(view.numpy().tobytes(), digest_size=16).hexdigest()


def fingerprint(value: Any) -> Any:
    """`value` (a model output, tuples, dicts, lists of pipeline answers) with every tensor made a Fingerprint."""
    if isinstance(value, torch.Tensor):
        keep = value.detach().cpu().clone() if value.numel() * value.element_size() <= KEEP_WHOLE_BYTES else None
        return Fingerprint(value.dtype, tuple(value.shape), _digest(value), keep)
    if isinstance(value, dict):  # ModelOutput is a dict of its non-None fields
        return {key: fingerprint(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [fingerprint(item) for item in value]
    return value


def _tensor_difference(reference: Fingerprint, actual: torch.Tensor) -> str | None:
    if actual.dtype != reference.dtype or tuple(actual.shape) != reference.shape:
        return f"{actual.dtype} {tuple(actual.shape)} where the reference is {reference.dtype} {reference.shape}"
    if reference.tensor is not None:
        expected = reference.tensor
        actual = actual.detach().cpu()
        if expected.is_floating_point():
            nan = expected.isnan()
            if torch.equal(nan, actual.isnan()) and torch.equal(expected[~nan], actual[~nan]):
                return None
            if not torch.equal(nan, actual.isnan()):
                return f"NaN at other places ({int((nan != actual.isnan()).sum())} elements)"
            difference = (expected[~nan].double() - actual[~nan].double()).abs()
            return (f"{int((difference != 0).sum())} of {expected.numel()} elements differ, the largest by "
                    f"{float(difference.max()):.3g}")
        if torch.equal(expected, actual):
            return None
        return f"{int((expected != actual).sum())} of {expected.numel()} elements differ"
    return None if _digest(actual) == reference.digest else "its bytes differ (a large tensor: digest only)"


def compare(reference: Any, actual: Any, path: str = "output") -> list[str]:
    """Every place where `actual` differs from the fingerprinted `reference`, exactly; [] when they are equal."""
    if isinstance(reference, Fingerprint):
        if not isinstance(actual, torch.Tensor):
            return [f"{path}: {type(actual).__name__} where the reference is a tensor"]
        problem = _tensor_difference(reference, actual)
        return [] if problem is None else [f"{path}: {problem}"]
    if isinstance(reference, dict):
        if not isinstance(actual, dict) or set(reference) != set(actual):
            keys = sorted(actual) if isinstance(actual, dict) else type(actual).__name__
            return [f"{path}: fields {keys} where the reference has {sorted(reference)}"]
        return [problem for key in reference for problem in compare(reference[key], actual[key], f"{path}.{key}")]
    if isinstance(reference, (list, tuple)):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(reference):
            size = len(actual) if isinstance(actual, (list, tuple)) else type(actual).__name__
            return [f"{path}: {size} items where the reference has {len(reference)}"]
        return [problem for index, (expected, got) in enumerate(zip(reference, actual))
                for problem in compare(expected, got, f"{path}[{index}]")]
    if isinstance(reference, float) and isinstance(actual, float) and math.isnan(reference) and math.isnan(actual):
        return []
    return [] if reference == actual and type(reference) is type(actual) else [f"{path}: {actual!r} != {reference!r}"]


# -- the model, the requests -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Request:
    kind: str  # "forward", "hidden_states", "attentions", "pipeline", "generate"
    texts: list[str]

    def describe(self) -> str:
        return f"{self.kind}, batch {len(self.texts)}, texts of {min(map(len, self.texts))}-" \
               f"{max(map(len, self.texts))} characters"


@dataclasses.dataclass
class Served:
    """What a server holds: one model, its tokenizer, one pipeline (classifiers), and how they are called."""

    model: Any
    tokenizer: Any
    pipe: Any
    max_length: int
    seq2seq: bool
    attn_implementation: str | None
    notes: list[str]
    max_new_tokens: int
    attentions: bool = False  # output_attentions=True requests are in the mix

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")

    def answer(self, request: Request) -> Any:
        if request.kind == "pipeline":
            # The tokenizer settings of every other request (see the module docstring).
            return self.pipe(request.texts, top_k=None, padding=True, truncation=True, max_length=self.max_length)
        inputs = self.encode(request.texts)
        with torch.inference_mode():
            if request.kind == "generate":
                inputs.pop("token_type_ids", None)  # a BERT tokenizer's, which BART-like models do not take
                return self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=1, do_sample=False)
            flags = {"attentions": {"output_attentions": True}, "hidden_states": {"output_hidden_states": True}}
            return self.model(**inputs, **flags.get(request.kind, {}))


def load_served(settings: LoadTestSettings) -> Served:
    folder = settings.folder
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    seq2seq = bool(config.is_encoder_decoder)
    auto_class = AutoModelForSeq2SeqLM if seq2seq else AutoModelForSequenceClassification
    notes: list[str] = []
    overrides: dict[str, Any] = {}
    if settings.full_depth:
        if hasattr(config, "adaptive"):
            overrides["adaptive"] = False  # the zoo's common off switch, set once at load, never per call
        else:
            notes.append(f"--full-depth: {config.model_type} has no `adaptive` switch; loaded as it is")
    model = None
    if settings.attentions and not seq2seq:
        try:
            model = auto_class.from_pretrained(folder, trust_remote_code=True, attn_implementation="eager",
                                               **overrides)
        except (ValueError, TypeError) as error:
            notes.append(f"loaded without attn_implementation='eager' ({error}); output_attentions left out")
    if model is None:
        model = auto_class.from_pretrained(folder, trust_remote_code=True, **overrides)
    model.eval()
    attn_implementation = getattr(model.config, "_attn_implementation", None)
    limits = [tokenizer.model_max_length, getattr(config, "max_position_embeddings", None)]
    max_length = min(limit for limit in limits if isinstance(limit, int) and 0 < limit < 1_000_000)
    pipe = None if seq2seq else pipeline("text-classification", model=model, tokenizer=tokenizer)
    served = Served(model, tokenizer, pipe, max_length, seq2seq, attn_implementation, notes, settings.max_new_tokens)
    served.attentions = settings.attentions and not seq2seq and attn_implementation == "eager"
    if served.attentions:
        try:  # an adaptive model may refuse attentions at its operating point (rows and tokens leave early)
            served.answer(Request("attentions", ["a probe"]))
        except (ValueError, RuntimeError, NotImplementedError) as error:
            served.attentions = False
            first = str(error).split(". ")[0]
            notes.append(f"output_attentions left out of the mix: the model refuses it as loaded ({first}); "
                         "--full-depth loads it with adaptive=False, which serves attentions")
    return served


def _generated_texts(tokenizer, rng: random.Random, count: int, max_length: int) -> list[str]:
    special = set(tokenizer.all_special_ids)
    ids = [token for token in range(len(tokenizer)) if token not in special]
    texts = []
    for index in range(count):
        band = index % 3  # short, medium, longer than the input length (truncated)
        length = rng.randint(3, 10) if band == 0 else (
            rng.randint(max_length // 3, max_length) if band == 1 else rng.randint(max_length + 1, 2 * max_length))
        text = tokenizer.decode([rng.choice(ids) for _ in range(length)], skip_special_tokens=True).strip()
        texts.append(text or "a")
    return texts


def _dataset_texts(name: str, rng: random.Random, count: int) -> list[str]:
    task = load_task_data(name)
    split = task.dataset["test"] if "test" in task.dataset else task.dataset["train"]
    texts = [text for text in split.select(range(min(len(split), 4 * count)))["text"] if text and text.strip()]
    rng.shuffle(texts)
    short = [" ".join(text.split()[: rng.randint(2, 8)]) for text in texts[: count // 3]]
    return short + texts[count // 3: count]


def build_requests(settings: LoadTestSettings, served: Served) -> list[Request]:
    """`settings.requests` requests drawn with `settings.seed`: kinds in turn, batch sizes and texts at random."""
    rng = random.Random(settings.seed)
    if served.seq2seq:
        kinds = ["generate"]
    else:
        kinds = ["forward"]
        if settings.hidden_states:
            kinds.append("hidden_states")
        if served.attentions:
            kinds.append("attentions")
        if settings.pipeline_calls:
            kinds.append("pipeline")
    pool_size = max(24, 2 * settings.max_batch_size)
    pool = (_dataset_texts(settings.dataset, rng, pool_size) if settings.dataset
            else _generated_texts(served.tokenizer, rng, pool_size, served.max_length))
    requests = []
    for index in range(settings.requests):
        size = rng.randint(1, settings.max_batch_size)
        requests.append(Request(kinds[index % len(kinds)], [rng.choice(pool) for _ in range(size)]))
    return requests


# -- the run -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Tally:
    requests: int = 0
    rows: int = 0
    mismatches: int = 0
    errors: int = 0
    by_kind: dict = dataclasses.field(default_factory=dict)
    details: list = dataclasses.field(default_factory=list)


def run_load_test(settings: LoadTestSettings) -> dict[str, Any]:
    """Load, compute the references, run the threads; the figures as a dict (`passed` says whether all held)."""
    rss_start = resident_memory_mb()
    served = load_served(settings)
    requests = build_requests(settings, served)
    started = time.perf_counter()
    references = [fingerprint(served.answer(request)) for request in requests]  # sequential: the reference
    sequential_seconds = time.perf_counter() - started

    tallies, lock = {True: _Tally(), False: _Tally()}, threading.Lock()  # record=True: the measured run
    budget = [settings.max_requests]  # shared count of requests still allowed (None: unbounded)

    def take() -> bool:
        with lock:
            if budget[0] is None:
                return True
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def worker(thread_index: int, deadline: float, record: bool) -> None:
        rng = random.Random(f"{settings.seed}-{thread_index}-{record}")
        while time.perf_counter() < deadline and (not record or take()):
            index = rng.randrange(len(requests))
            request = requests[index]
            try:
                problems = compare(references[index], served.answer(request))
            except Exception as error:  # noqa: BLE001 - a request that raises is a failure to report, not a crash
                problems, failed = [f"raised {type(error).__name__}: {error}"], True
            else:
                failed = False
            with lock:
                tally = tallies[record]
                tally.requests += 1
                tally.rows += len(request.texts)
                kind = tally.by_kind.setdefault(request.kind, {"requests": 0, "mismatches": 0, "errors": 0})
                kind["requests"] += 1
                if problems:
                    key = "errors" if failed else "mismatches"
                    setattr(tally, key, getattr(tally, key) + 1)
                    kind[key] += 1
                    if len(tally.details) < MISMATCH_DETAILS:
                        tally.details.append({"phase": "run" if record else "warm-up", "thread": thread_index,
                                              "request": index,
                                              "what": request.describe(), "problems": problems[:4],
                                              "more_problems": max(0, len(problems) - 4)})

    def run_threads(seconds: float, record: bool) -> float:
        deadline = time.perf_counter() + seconds
        threads = [threading.Thread(target=worker, args=(index, deadline, record), daemon=True)
                   for index in range(settings.threads)]
        begin = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 600)  # a request never takes 10 minutes; bounded either way
        return time.perf_counter() - begin

    # Warm-up under threads too: per-thread allocator arenas and kernels' scratch space count as warm-up.
    run_threads(min(max(settings.seconds / 10, 0.5), 10.0), record=False)
    rss_warm = resident_memory_mb()
    elapsed = run_threads(settings.seconds, record=True)
    rss_end = resident_memory_mb()

    tally, warm_up = tallies[True], tallies[False]
    growth = None if rss_end is None or rss_warm is None else rss_end - rss_warm
    memory_ok = growth is None or growth <= settings.max_rss_growth_mb
    result = {
        "folder": settings.folder,
        "model_type": served.model.config.model_type,
        "model_class": type(served.model).__name__,
        # adaptive-zoo registers its classes with the Auto classes, so these are the installed package's; a process
        # without adaptive-zoo runs the folder's own copy of the code, which is the same for a folder it saved
        "model_code": type(served.model).__module__,
        "attn_implementation": served.attn_implementation,
        "full_depth": settings.full_depth,
        "threads": settings.threads,
        "seconds": round(elapsed, 3),
        "distinct_requests": len(requests),
        "kinds": sorted({request.kind for request in requests}),
        "requests": tally.requests,
        "rows": tally.rows,
        "requests_per_second": round(tally.requests / elapsed, 2) if elapsed else None,
        "rows_per_second": round(tally.rows / elapsed, 2) if elapsed else None,
        "reference_seconds": round(sequential_seconds, 2),
        "mismatches": tally.mismatches,
        "errors": tally.errors,
        "by_kind": tally.by_kind,
        "warmup_requests": warm_up.requests,
        "warmup_mismatches": warm_up.mismatches,
        "warmup_errors": warm_up.errors,
        "first_failures": (tally.details + warm_up.details)[:MISMATCH_DETAILS],
        "rss_mb": {"start": _round(rss_start), "after_warmup": _round(rss_warm), "end": _round(rss_end),
                   "growth_after_warmup": _round(growth), "max_growth_allowed": settings.max_rss_growth_mb},
        "torch_intra_op_threads": torch.get_num_threads(),
        "notes": served.notes,
        "seed": settings.seed,
    }
    failures = tally.mismatches + tally.errors + warm_up.mismatches + warm_up.errors
    result["passed"] = failures == 0 and memory_ok and tally.requests > 0
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def report_lines(result: dict[str, Any]) -> list[str]:
    rss = result["rss_mb"]
    lines = [
        f"{result['model_class']} ({result['model_type']}, attention {result['attn_implementation']}, code "
        f"{result['model_code']}) from {result['folder']}: {result['threads']} threads for {result['seconds']:.1f} s over "
        f"{result['distinct_requests']} distinct requests ({', '.join(result['kinds'])})",
        f"{result['requests']} requests, {result['rows']} rows: {result['requests_per_second']} requests/s, "
        f"{result['rows_per_second']} rows/s (the sequential reference pass took {result['reference_seconds']} s; "
        f"torch intra-op threads, shared by all: {result['torch_intra_op_threads']})",
        f"mismatches: {result['mismatches']}, errors: {result['errors']} (warm-up: {result['warmup_requests']} "
        f"requests, {result['warmup_mismatches']} mismatches, {result['warmup_errors']} errors) | per kind: " + ", ".join(
            f"{kind} {figures['requests']} ({figures['mismatches']} mismatched, {figures['errors']} raised)"
            for kind, figures in sorted(result["by_kind"].items())),
        f"resident memory (MiB): start {rss['start']}, after warm-up {rss['after_warmup']}, end {rss['end']}; "
        f"growth after warm-up {rss['growth_after_warmup']} (allowed {rss['max_growth_allowed']})",
    ]
    for failure in result["first_failures"]:
        lines.append(f"  {failure['phase']}, thread {failure['thread']}, request {failure['request']} "
                     f"({failure['what']}):")
        lines += [f"    {problem}" for problem in failure["problems"]]
        if failure["more_problems"]:
            lines.append(f"    ... and {failure['more_problems']} more")
    lines += [f"note: {note}" for note in result["notes"]]
    lines.append("PASSED" if result["passed"] else "FAILED")
    lines.append(json.dumps(result, default=str))
    return lines


# -- command line ------------------------------------------------------------------------------------------------


# -- the recorded results, as a table ---------------------------------------------------------------------------

TABLE_MARKERS = ("<!-- generated by `python -m adaptive_zoo.loadtest --table RESULTS --markdown FILE`: do not edit -->",
                 "<!-- end generated (load tests) -->")


def results_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of load-test results (the JSON lines `--output` appends), one row per run."""
    lines = ["| folder | model | mode | request kinds | threads | seconds | requests | requests/s | rows/s | "
             "mismatches | errors | memory after warm-up, end (MiB) | passed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        rss = row["rss_mb"]
        lines.append(
            f"| `{Path(row['folder']).name}` | {row['model_class']} | "
            f"{'full depth' if row['full_depth'] else 'adaptive'} | {', '.join(row['kinds'])} | {row['threads']} | "
            f"{row['seconds']:.0f} | {row['requests']} | {row['requests_per_second']} | {row['rows_per_second']} | "
            f"{row['mismatches'] + row['warmup_mismatches']} | {row['errors'] + row['warmup_errors']} | "
            f"{rss['after_warmup']}, {rss['end']} | {'yes' if row['passed'] else '**no**'} |"
        )
    return "\n".join(lines)


def write_results_table(results: str | Path, markdown: str | Path) -> None:
    """Replace the generated block of `markdown` (between `TABLE_MARKERS`) with the table of `results`."""
    rows = [json.loads(line) for line in Path(results).read_text(encoding="utf-8").splitlines() if line.strip()]
    text = Path(markdown).read_text(encoding="utf-8")
    start, end = TABLE_MARKERS
    if start not in text or end not in text:
        raise ValueError(f"{markdown} has no generated block: put the two lines {start!r} and {end!r} where the "
                         "table goes")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    Path(markdown).write_text(f"{before}{start}\n\n{results_table(rows)}\n\n{end}{after}", encoding="utf-8")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", nargs="?", help="A saved model folder (a classifier, or a seq2seq model: generate).")
    parser.add_argument("--threads", type=_positive(int), default=8, help="Request threads (default: 8).")
    parser.add_argument("--seconds", type=_positive(float), default=60.0,
                        help="How long the threads run after the reference and warm-up (default: 60).")
    parser.add_argument("--requests", type=_positive(int), default=48,
                        help="Distinct requests in the mix, each computed sequentially first (default: 48).")
    parser.add_argument("--max-batch-size", type=_positive(int), default=8, help="Largest batch (default: 8).")
    parser.add_argument("--max-requests", type=_positive(int), default=None,
                        help="Stop after this many threaded requests in all (default: as many as --seconds allows).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the request mix (default: 0).")
    parser.add_argument("--no-attentions", dest="attentions", action="store_false",
                        help="Leave output_attentions=True out of the mix (and load the model as it is, not eager).")
    parser.add_argument("--full-depth", action="store_true",
                        help="Load the model with adaptive=False (the zoo's off switch): the adaptive models serve "
                        "output_attentions only at full depth.")
    parser.add_argument("--no-hidden-states", dest="hidden_states", action="store_false",
                        help="Leave output_hidden_states=True out of the mix.")
    parser.add_argument("--no-pipeline", dest="pipeline_calls", action="store_false",
                        help="Leave the pipeline calls out of the mix.")
    parser.add_argument("--max-rss-growth-mb", type=float, default=64.0,
                        help="Fail when resident memory grows past warm-up by more than this (default: 64 MiB).")
    parser.add_argument("--max-new-tokens", type=_positive(int), default=8,
                        help="Seq2seq: tokens each generate call adds (default: 8).")
    parser.add_argument("--dataset", default=None,
                        help="Texts from this bundled dataset or local file (default: decoded random token ids).")
    parser.add_argument("--output", default=None, help="Also append the JSON line of the figures to this file (default: stdout only).")
    parser.add_argument("--table", metavar="RESULTS", default=None,
                        help="Instead of a run: write the table of the results file RESULTS (what --output appended) "
                        "into the generated block of --markdown (default: none, a load-test run).")
    parser.add_argument("--markdown", default="docs/serving.md", help="The file whose table --table rewrites.")


def settings_from(args: argparse.Namespace) -> LoadTestSettings:
    return LoadTestSettings(**{field.name: getattr(args, field.name) for field in dataclasses.fields(LoadTestSettings)})


def table_from_arguments(args: argparse.Namespace) -> list[str]:
    write_results_table(args.table, args.markdown)
    return [f"wrote the table of {args.table} into {args.markdown}"]


def run_from_arguments(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    settings = settings_from(args)
    if settings.folder is None:
        raise ValueError("give a model folder to load-test (or --table RESULTS to write a results table)")
    if not Path(settings.folder).is_dir():
        raise FileNotFoundError(f"{settings.folder}: no such model folder; give a folder written by "
                                "`adaptive-zoo train` (or any saved classifier or seq2seq model)")
    result = run_load_test(settings)
    if settings.output:
        with open(settings.output, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result, default=str) + "\n")
    return result, report_lines(result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adaptive_zoo.loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        if args.table:
            print("\n".join(table_from_arguments(args)))
            return 0
        result, lines = run_from_arguments(args)
    except (FileNotFoundError, ValueError, OSError) as error:
        print(f"loadtest: error: {error}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
