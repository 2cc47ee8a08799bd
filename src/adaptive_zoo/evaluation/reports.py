"""Typed reports of one measured split. Each report owns its one-line summary (what the command line prints last)
and its model-card rows (the `model-index` entries the Hub shows); `to_dict()` is what adaptive_zoo_results.json
and `adaptive-zoo evaluate` write (fields never measured, None, are left out)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from huggingface_hub import EvalResult

Scores = dict[str, float]


@dataclass(frozen=True)
class EvaluationOptions:
    """How a split is measured: batching, timing, and (seq2seq) generation."""

    batch_size: int = 32
    """Batch size of accuracy, FLOPs and throughput (and of generation)."""
    measure_wallclock: bool = True
    repeats: int = 5
    """Interleaved timing repetitions."""
    latency_samples: int = 64
    """Inputs timed one at a time for the latency at batch 1 (classifiers)."""
    max_new_tokens: int = 32
    num_beams: int = 1


@dataclass
class EvaluationReport:
    """Fields every report has: the split's size and how it was batched."""

    num_samples: int
    batch_size: int

    task_type = "text-classification"

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    def summary_line(self) -> str:
        raise NotImplementedError

    def eval_results(self, *, dataset_name: str, split: str) -> list[EvalResult]:
        raise NotImplementedError

    def _result(self, metric_type: str, value: float, *, dataset_name: str, split: str, name: str | None = None,
                digits: int = 3) -> EvalResult:
        return EvalResult(task_type=self.task_type, dataset_type=dataset_name, dataset_name=dataset_name,
                          dataset_split=split, metric_type=metric_type, metric_name=name,
                          metric_value=round(value, digits))


@dataclass
class ClassificationReport(EvaluationReport):
    """An adaptive classifier against the same weights at full depth and the vanilla transformers model."""

    max_length: int
    accuracy: float
    baseline_accuracy: float
    """The same weights at full depth (the adaptivity off)."""
    vanilla_accuracy: float
    flops: int
    vanilla_flops: int
    flops_speedup: float
    exit: dict[str, Any] | None = None
    """Early-exit models: the mean exit layer and its histogram."""
    mean_kept_tokens_per_layer: list[float] | None = None
    """Token-dropping models: the mean number of tokens entering each layer."""
    mean_kept_fraction_per_layer: list[float] | None = None
    mean_exit_layer_per_token: float | None = None
    """Token-exit models (HashEE)."""
    wallclock_speedup: float | None = None
    latency_speedup: float | None = None
    throughput_samples_per_s: dict[str, float] | None = None
    latency_ms_per_sample: dict[str, float] | None = None
    wallclock_repeats: int | None = None
    finetuned_accuracy: float | None = None
    """The fine-tuned model the adaptive one started from (AdapLeR's phase 1)."""
    finetuned_checkpoint: str | None = None
    vanilla_finetuned_accuracy: float | None = None
    """The backbone fine-tuned the same way without exits (HashEE's `--train-vanilla`)."""

    def summary_line(self) -> str:
        line = (f"accuracy {100 * self.accuracy:.2f} | full depth {100 * self.baseline_accuracy:.2f} | "
                f"executed-FLOPs speed-up {self.flops_speedup:.2f}x")
        if self.wallclock_speedup is not None:
            line += (f" | throughput speed-up (batch {self.batch_size}) {self.wallclock_speedup:.2f}x"
                     f" | latency speed-up (batch 1) {self.latency_speedup:.2f}x")
        if self.exit is not None:
            line += f" | mean exit layer {self.exit['mean_exit_layer']:.2f} {self.exit['histogram']}"
        return line

    def eval_results(self, *, dataset_name: str, split: str) -> list[EvalResult]:
        where = dict(dataset_name=dataset_name, split=split)
        return [
            self._result("accuracy", self.accuracy, digits=4, **where),
            self._result("accuracy", self.baseline_accuracy, name="full-depth accuracy (same weights)", digits=4,
                         **where),
            self._result("speedup", self.flops_speedup, name="executed FLOPs speed-up vs vanilla", **where),
        ] + ([] if self.wallclock_speedup is None else [
            self._result("speedup", self.wallclock_speedup, name=f"throughput speed-up vs vanilla (batch "
                         f"{self.batch_size})", **where),
            self._result("speedup", self.latency_speedup, name="latency speed-up vs vanilla (batch 1)", **where),
        ])


@dataclass
class GenerationReport(EvaluationReport):
    """Fields of every seq2seq report: generation settings and text quality of the adaptive model, the same
    weights at full depth and the vanilla transformers model."""

    num_beams: int
    max_source_length: int
    max_new_tokens: int
    rouge: Scores
    baseline_rouge: Scores
    vanilla_rouge: Scores
    identical_to_vanilla_at_full_depth: bool
    agreement_with_full_depth: dict[str, Any]
    mean_generated_tokens: float
    vanilla_mean_generated_tokens: float
    exit_histogram: list[int]
    num_encoder_layers: int
    generate_flops: int
    vanilla_generate_flops: int
    generate_flops_speedup: float
    examples: list[dict[str, str]]

    task_type = "summarization"

    reference_name = "vanilla"
    """What the speed-ups are measured against."""

    def _rouge_text(self) -> str:
        return f"ROUGE-1/2/L {self.rouge['rouge1']:.2f}/{self.rouge['rouge2']:.2f}/{self.rouge['rougeL']:.2f}"

    def _middle_results(self, where: dict[str, str]) -> list[EvalResult]:
        """The rows between ROUGE and the wall-clock speed-up."""
        raise NotImplementedError

    def eval_results(self, *, dataset_name: str, split: str) -> list[EvalResult]:
        where = dict(dataset_name=dataset_name, split=split)
        rows = [self._result(name, self.rouge[name], digits=2, **where) for name in ("rouge1", "rouge2", "rougeL")]
        rows += self._middle_results(where)
        if self.generate_wallclock_speedup is not None:
            rows.append(self._result("speedup", self.generate_wallclock_speedup,
                                     name=f"generate wall-clock speed-up vs {self.reference_name}", **where))
        return rows


@dataclass
class TokenExitSeq2SeqReport(GenerationReport):
    """A seq2seq model whose encoder tokens exit early (HashEE-BART) against vanilla BART; the saving is also
    predicted analytically (the paper's Table 10) and checked against the measured FLOPs."""

    mean_exit_layer_per_token: float = 0.0
    encoder_flops: int = 0
    vanilla_encoder_flops: int = 0
    table10_check: dict[str, Any] | None = None
    encoder_flops_speedup: float = 0.0
    equal_length_generate_flops_speedup: float = 0.0
    generate_wallclock_speedup: float | None = None
    equal_length_generate_wallclock_speedup: float | None = None
    wallclock_repeats: int | None = None
    vanilla_finetuned_rouge: Scores | None = None
    """The backbone fine-tuned the same way without exits (HashEE's `--train-vanilla`)."""

    def summary_line(self) -> str:
        line = (f"{self._rouge_text()} | full depth ROUGE-1 {self.baseline_rouge['rouge1']:.2f} | encoder FLOPs "
                f"speed-up {self.encoder_flops_speedup:.2f}x | generate FLOPs speed-up {self.generate_flops_speedup:.2f}x"
                f" | mean exit layer per token {self.mean_exit_layer_per_token:.2f}")
        if self.generate_wallclock_speedup is not None:
            line += f" | generate wall-clock speed-up {self.generate_wallclock_speedup:.2f}x"
        return line

    def _middle_results(self, where: dict[str, str]) -> list[EvalResult]:
        return [
            self._result("rouge1", self.baseline_rouge["rouge1"], name="full-depth ROUGE-1 (same weights)", digits=2,
                         **where),
            self._result("speedup", self.encoder_flops_speedup, name="encoder executed FLOPs speed-up vs vanilla",
                         **where),
            self._result("speedup", self.generate_flops_speedup, name="generate executed FLOPs speed-up vs vanilla",
                         **where),
        ]


@dataclass
class DepthAdaptiveReport(GenerationReport):
    """A seq2seq model whose decoder picks its depth (the Depth-Adaptive Transformer) against the same weights at
    full depth and vanilla BART: quality, the average exit (AE) of the generated tokens, and costs."""

    exit_prediction: str = ""
    confidence_thresholds: list[float] | None = None
    bleu: float = 0.0
    baseline_bleu: float = 0.0
    vanilla_bleu: float = 0.0
    num_decoder_layers: int = 0
    average_exit: float = 0.0
    average_exit_fraction: float = 0.0
    num_generated_tokens: int = 0
    full_depth_mean_generated_tokens: float = 0.0
    encoder_flops: int = 0
    full_depth_generate_flops: int = 0
    decoder_generate_flops: int = 0
    full_depth_decoder_generate_flops: int = 0
    generate_flops_speedup_vs_vanilla: float = 0.0
    decoder_flops_speedup: float = 0.0
    generate_wallclock_speedup: float | None = None
    vanilla_generate_wallclock_speedup: float | None = None
    generate_wallclock_speedup_vs_vanilla: float | None = None
    generate_seconds: dict[str, float] | None = None
    wallclock_repeats: int | None = None

    reference_name = "full depth"

    def summary_line(self) -> str:
        line = (f"{self._rouge_text()} | BLEU {self.bleu:.2f} | full depth ROUGE-1 {self.baseline_rouge['rouge1']:.2f}, "
                f"BLEU {self.baseline_bleu:.2f} | average exit {self.average_exit:.2f} of {self.num_decoder_layers} "
                f"({100 * self.average_exit_fraction:.0f}%) {self.exit_histogram} | generate FLOPs speed-up vs full "
                f"depth {self.generate_flops_speedup:.2f}x")
        if self.generate_wallclock_speedup is not None:
            line += f" | generate wall-clock speed-up vs full depth {self.generate_wallclock_speedup:.2f}x"
        return line

    def _middle_results(self, where: dict[str, str]) -> list[EvalResult]:
        return [
            self._result("bleu", self.bleu, name="BLEU (sacrebleu)", digits=2, **where),
            self._result("rouge1", self.baseline_rouge["rouge1"], name="full-depth ROUGE-1 (same weights)", digits=2,
                         **where),
            self._result("average_exit", self.average_exit_fraction, name="average exit / decoder depth", digits=4,
                         **where),
            self._result("speedup", self.generate_flops_speedup, name="generate executed FLOPs speed-up vs full "
                         "depth", **where),
        ]
