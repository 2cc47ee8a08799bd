"""What long work shows while it runs, the way transformers users expect it.

- One line per phase of a recipe (training stage, saliency extraction, threshold sweep, measurement), with its size,
  on the `adaptive_zoo.progress` logger (stderr; silence it with
  `logging.getLogger("adaptive_zoo.progress").setLevel(logging.WARNING)`).
- Trainer progress: the Trainer's own tqdm bars when stderr is a terminal; otherwise (a log file, a pipe, CI) a
  compact line with the step, the epoch and an ETA every `LINE_INTERVAL_S` seconds, and one line per logged epoch,
  instead of the raw metric dicts the Trainer prints with its bars off.
- Long loops outside the Trainer (threshold sweeps, operating points, timing repetitions): the same, with `steps`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

T = TypeVar("T")

#: Seconds between two progress lines when stderr is not a terminal.
LINE_INTERVAL_S = float(os.environ.get("ADAPTIVE_ZOO_PROGRESS_INTERVAL", 30))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (pytest's capture, a redirected stream), not the stream at
    import time."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if bars_enabled():  # above the tqdm bars being drawn, not through them
            tqdm.write(self.format(record), file=sys.stderr)
        else:
            super().emit(record)


logger = logging.getLogger("adaptive_zoo.progress")
if not logger.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("[adaptive-zoo] %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def announce(message: str) -> None:
    """One progress line: a phase starting (with its size), a phase's result, or what was newly added."""
    logger.info(message)


def bars_enabled() -> bool:
    """tqdm bars only where they render: an interactive stderr (where tqdm draws them)."""
    return sys.stderr.isatty()


def duration(seconds: float) -> str:
    """3725 -> '1h02m', 125 -> '2m05s', 7.3 -> '7s'."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressLine:
    """'what: i/n (p%), elapsed, ETA' at most every `LINE_INTERVAL_S` seconds, and when done: for work counted
    in a callback rather than a loop."""

    def __init__(self, what: str, total: int | None) -> None:
        self.what, self.total = what, total
        self.start = self.last = time.monotonic()

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.monotonic()
        finished = self.total is not None and done >= self.total
        if not (force or finished or now - self.last >= LINE_INTERVAL_S):
            return
        self.last = now
        elapsed = now - self.start
        if self.total:
            eta = elapsed / done * (self.total - done) if done else float("nan")
            eta_text = "done" if finished else ("ETA ?" if done == 0 else f"ETA {duration(eta)}")
            position = f"{done:,}/{self.total:,} ({100 * done / self.total:.0f}%)"
        else:
            position, eta_text = f"{done:,}", ""
        parts = [position, extra, f"{duration(elapsed)} elapsed", eta_text]
        announce(f"{self.what}: " + ", ".join(p for p in parts if p))


def steps(items: Iterable[T], what: str, total: int | None = None) -> Iterator[T]:
    """Iterate `items`, showing progress: a tqdm bar on a terminal, else a throttled line with an ETA."""
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if bars_enabled():
        yield from tqdm(items, total=total, desc=what, leave=False)
        return
    throttle = ProgressLine(what, total)
    for done, item in enumerate(items):
        yield item
        throttle.update(done + 1)


class TrainingProgress(TrainerCallback):
    """Announces a training phase with its size; without bars, also prints a compact progress line with an ETA
    and one line per log (the epoch's loss and evaluation metrics)."""

    def __init__(self, phase: str, num_examples: int | None = None, lines: bool = True) -> None:
        self.phase, self.num_examples, self.lines = phase, num_examples, lines
        self.line: ProgressLine | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        size = f"{self.num_examples:,} examples x " if self.num_examples is not None else ""
        batch = args.per_device_train_batch_size * max(1, args.world_size) * args.gradient_accumulation_steps
        announce(f"{self.phase}: {size}{args.num_train_epochs:g} epochs = {state.max_steps:,} steps of {batch}")
        self.line = ProgressLine(self.phase, state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        if self.lines and self.line is not None and state.is_world_process_zero:
            self.line.update(state.global_step, extra=f"epoch {state.epoch or 0:.2f}/{args.num_train_epochs:g}")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (self.lines and logs and state.is_world_process_zero):
            return
        shown = {key: value for key, value in logs.items() if isinstance(value, (int, float))
                 and (key in ("loss", "train_loss", "eval_loss") or "accuracy" in key or key.startswith("eval_rouge"))}
        if shown:
            epoch = f"epoch {state.epoch:g}" if state.epoch is not None else f"step {state.global_step}"
            announce(f"{self.phase}: {epoch}: " + ", ".join(f"{key} {value:.4g}" for key, value in shown.items()))


def attach_progress(trainer, phase: str):
    """Show `trainer`'s progress (see the module docstring); returns the trainer."""
    lines = trainer.args.disable_tqdm
    if lines:
        trainer.remove_callback(PrinterCallback)  # its raw dicts are replaced by TrainingProgress's lines
    dataset = trainer.train_dataset
    trainer.add_callback(TrainingProgress(phase, len(dataset) if hasattr(dataset, "__len__") else None, lines=lines))
    return trainer
