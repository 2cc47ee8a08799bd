"""Depth-Adaptive Transformer (Elbayad et al., 2020): a BART (a pretrained BART base, or warm-started from a BERT one)
whose decoder picks a depth per sequence or per token; fine-tuned with Seq2SeqTrainer on a summarization dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForSeq2SeqLM, BartForConditionalGeneration

from ..data import select_first, tokenize_seq2seq
from ..evaluation.operating_points import THRESHOLD_METRICS, choose_confidence_thresholds
from ..evaluation.plots import plot_tradeoff
from ..evaluation.reports import EvaluationOptions
from ..evaluation.seq2seq import evaluate_dat
from ..models.dat import DepthAdaptiveTransformer, DepthAdaptiveTransformerConfig
from ..settings import fraction, non_negative_int, one_of, positive_int, setting
from ..training.common import trainer_work_dir
from ..training.dat import (
    DATTrainingArguments,
    build_dat,
    dat_config_from_bart,
    finetune_dat,
    keep_lowest_encoder_layers,
)
from .base import ModelFamily, OperatingPoint, RecipeRun, register_method
from .tasks import (
    GenerationMethod,
    base_is_bart,
    calibration_split,
    generation_arguments,
    generation_options,
    seq2seq_base,
)

THRESHOLD_SEARCH_IMAGE = "threshold_search.png"
EXIT_PREDICTION_TEXT = {
    "sequence": "sequence-specific: one depth for the whole output, predicted from the mean encoder state "
    "(q(n|x) = softmax(W_h s + b_h)), trained against the {oracle} oracle",
    "multinomial": "token-specific multinomial: each token's depth predicted from its first decoder block's output "
    "(q_t(n) = softmax(W_h h_t^1 + b_h)), trained against the {oracle} oracle",
    "geometric": "token-specific geometric-like: a halting score after each block, the token exits at the first "
    "block whose score exceeds {halting}; trained against the {oracle} oracle",
    "confidence": "thresholded confidence: a token exits at the first block n whose output distribution's top "
    "probability exceeds T_n (no learned predictor; T tuned on validation, see below)",
}
DEFAULT_COMPUTE_BUDGET = 0.5
DEFAULT_THRESHOLD_TRIALS = 100
BENCHMARK_THRESHOLD_SETTINGS = 6
"""Threshold settings of the recorded validation search that `adaptive-zoo benchmark` measures besides the shipped
one: evenly spaced along the search's Pareto front (best score for its average exit)."""


@dataclass
class DATSettings(DATTrainingArguments):
    """`adaptive-zoo train dat`: training, then (confidence exits) the thresholds T_n tuned on validation."""

    compute_budget: float | None = setting(None, help="confidence only: the largest average exit allowed, as a "
                                           "fraction of N.", check=fraction, default_text=f"{DEFAULT_COMPUTE_BUDGET:g}",
                                           check_at_parse=False)
    threshold_trials: int | None = setting(None, help="confidence only: random threshold settings tried on "
                                           "validation, on top of full depth and \"always exit at block 1\".",
                                           check=non_negative_int, default_text=str(DEFAULT_THRESHOLD_TRIALS),
                                           check_at_parse=False)
    threshold_metric: str = setting("rouge1", help="What the threshold search maximises.",
                                    check=one_of(*THRESHOLD_METRICS), flag=False)
    threshold_samples: int | None = setting(200, help="Validation examples the threshold search runs on.",
                                            check=positive_int, flag=False)

    def __post_init__(self):
        super().__post_init__()
        if self.exit_prediction != "confidence" and (self.compute_budget is not None or self.threshold_trials is not None):
            raise ValueError(
                "--compute-budget and --threshold-trials tune the thresholds of --exit-prediction confidence; "
                f"this run uses {self.exit_prediction!r}, whose exits are learned."
            )

    @property
    def resolved_compute_budget(self) -> float:
        return DEFAULT_COMPUTE_BUDGET if self.compute_budget is None else self.compute_budget

    @property
    def resolved_threshold_trials(self) -> int:
        return DEFAULT_THRESHOLD_TRIALS if self.threshold_trials is None else self.threshold_trials


@register_method
class DepthAdaptive(GenerationMethod):
    name = "dat"
    families = (ModelFamily(DepthAdaptiveTransformerConfig, {AutoModelForSeq2SeqLM: DepthAdaptiveTransformer}),)
    settings_class = DATSettings
    default_dataset = "bbc_headlines"
    depth_baseline_side = "decoder"

    def _warm_started_bart(self, run: RecipeRun) -> BartForConditionalGeneration:
        settings = run.settings
        bart, warm_start = seq2seq_base(run, decoder_layers=settings.decoder_layers, seed=settings.seed,
                                        cross_attention_init=settings.cross_attention_init or "self_attention")
        return keep_lowest_encoder_layers(bart, warm_start, settings.encoder_layers)

    def starting_bart(self, run: RecipeRun) -> BartForConditionalGeneration:
        """The warm-started BART of `build`, or with `--from-scratch` a randomly initialised BART of its shape
        (seeded with the run's seed)."""
        bart = self._warm_started_bart(run)
        if not run.settings.from_scratch:
            return bart
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(run.settings.seed)
            scratch = BartForConditionalGeneration(bart.config)
        scratch.generation_config = bart.generation_config
        return scratch

    def build(self, run: RecipeRun) -> DepthAdaptiveTransformer:
        """The shape (and, unless from scratch, the weights) of the BART; every paper field is validated here,
        before any training."""
        settings = run.settings
        bart = self._warm_started_bart(run)
        config = dat_config_from_bart(bart.config, **settings.model_overrides())
        if settings.exit_prediction == "confidence" and settings.resolved_compute_budget * config.num_exits < 1:
            raise ValueError(
                f"compute_budget={settings.resolved_compute_budget} of {config.num_exits} decoder blocks is below 1 "
                f"block, which every token runs; use at least {1 / config.num_exits:.3g}."
            )
        if settings.from_scratch:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(settings.seed)
                model = DepthAdaptiveTransformer(config)
            model.generation_config = bart.generation_config
            run.record["warm_start"] = {"pretrained": 0, "fresh": sum(p.numel() for p in model.parameters())}
            run.card["warm_start_text"] = (
                f"None: trained from scratch (`--from-scratch`). A randomly initialised BART with the shape a warm "
                f"start from `{settings.base_model}` gives ({config.encoder_layers} encoder layers, "
                f"{config.decoder_layers} decoder blocks, d_model {config.d_model}, "
                f"{run.record['warm_start']['fresh']:,} parameters, all fresh), with that checkpoint's tokenizer "
                + ("and special tokens." if base_is_bart(run) else
                   "(WordPiece: decoder_start/bos = [CLS], eos = [SEP], pad = [PAD])."))
        else:
            model = build_dat(bart, **settings.model_overrides())
        if model.exit_predictor is not None:
            run.card["warm_start_text"] += "\n- The exit predictor (`exit_predictor.*`) is new, trained on the task."
        return model

    def train(self, run: RecipeRun, model: DepthAdaptiveTransformer):
        settings = run.settings
        encoded = tokenize_seq2seq(run.task.dataset, run.tokenizer, settings.max_length, settings.max_target_length,
                                   decoder_start_token_id=model.config.decoder_start_token_id)
        trainer = finetune_dat(
            model.train(), run.tokenizer, encoded["train"], encoded["validation"],
            trainer_work_dir(run.output_dir) / "dat", num_train_epochs=settings.num_train_epochs,
            learning_rate=settings.learning_rate, per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size, seed=settings.seed, data_seed=settings.seed,
            **settings.trainer_overrides,
        )
        if not trainer.is_world_process_zero():
            return None
        model = trainer.model
        model.config.use_cache = True  # the Trainer saves use_cache=False; generation (and users) want the cache
        return model

    def choose_operating_point(self, run: RecipeRun, model: DepthAdaptiveTransformer):
        settings = run.settings
        run.tags += ["depth-adaptive", "early-exit", "text2text-generation"]
        run.task_tag = "summarization"
        run.record["training"] = settings.to_dict()
        if settings.exit_prediction != "confidence":
            return model  # the exits are learned: nothing to tune
        validation = select_first(run.task.dataset["validation"], settings.threshold_samples)
        search = choose_confidence_thresholds(
            model, run.tokenizer, validation["text"], validation["summary"],
            budget_fraction=settings.resolved_compute_budget, num_trials=settings.resolved_threshold_trials,
            seed=settings.seed, metric=settings.threshold_metric, **generation_arguments(run),
        )
        if search.best is None:
            raise RuntimeError("No threshold setting met the compute budget.")  # "exit at block 1" always does
        model.config.confidence_thresholds = search.best_thresholds
        run.artifacts["search"] = search
        run.record["threshold_search"] = {**search.to_dict(), "budget_fraction": settings.resolved_compute_budget,
                                          "metric": settings.threshold_metric,
                                          "num_validation_samples": len(validation),
                                          "full_depth_score": search.trials[0].score}
        run.card["search"] = run.record["threshold_search"]
        return model

    def measure(self, run: RecipeRun, model: DepthAdaptiveTransformer):
        settings, config = run.settings, model.config
        report = self.evaluate(model, run.tokenizer, run.task.dataset["test"], max_length=settings.max_length,
                               options=generation_options(run))
        run.card.update(
            from_scratch=settings.from_scratch, search_image=THRESHOLD_SEARCH_IMAGE, dat=config,
            exit_prediction_text=EXIT_PREDICTION_TEXT[config.exit_prediction].format(
                oracle=f"{config.oracle} (sigma {config.oracle_sigma}, lambda {config.oracle_depth_penalty})",
                halting=config.halting_threshold),
        )
        return report

    def add_files(self, run: RecipeRun, model: DepthAdaptiveTransformer, folder: Path) -> None:
        search = run.artifacts.get("search")
        if search is None:
            return
        points = [{"average_exit": trial.average_exit, "score": trial.score} for trial in search.trials]
        plot_tradeoff(
            points, "average_exit", "score", folder / THRESHOLD_SEARCH_IMAGE, chosen=search.trials.index(search.best),
            baseline_y=search.trials[0].score, baseline_label="full depth",
            title=f"Confidence thresholds on validation (budget: AE <= {search.budget:.2f})",
            xlabel=f"average exit (blocks, of {model.config.num_exits})",
            ylabel=f"validation {run.settings.threshold_metric}",
        )

    def evaluate(self, model, tokenizer, split: Any, *, max_length: int, options: EvaluationOptions):
        return evaluate_dat(model, tokenizer, split["text"], split["summary"], max_source_length=max_length,
                           options=options)

    def calibrate(self, model, tokenizer, settings, max_length: int) -> dict[str, Any]:
        if model.config.exit_prediction != "confidence":
            raise ValueError(
                f"This Depth-Adaptive Transformer's exits come from its learned {model.config.exit_prediction!r} "
                "predictor, which trains with the weights: it has no operating point to calibrate. Only "
                "`exit_prediction='confidence'` models have thresholds (T_n) to tune."
            )
        split = select_first(calibration_split(settings, "seq2seq").dataset[settings.split], settings.max_eval_samples)
        budget = DEFAULT_COMPUTE_BUDGET if settings.compute_budget is None else fraction(settings.compute_budget)
        trials = DEFAULT_THRESHOLD_TRIALS if settings.threshold_trials is None else settings.threshold_trials
        search = choose_confidence_thresholds(
            model, tokenizer, split["text"], split["summary"], budget_fraction=budget, num_trials=trials,
            seed=settings.seed, batch_size=settings.batch_size, max_source_length=max_length,
            max_new_tokens=settings.max_new_tokens, num_beams=1,
        )
        model.config.confidence_thresholds = search.best_thresholds
        return {"operating_point": {"confidence_thresholds": search.best_thresholds},
                "full_depth_score": search.trials[0].score,
                "chosen": {"score": search.best.score, "average_exit": search.best.average_exit},
                "search": search.to_dict()}

    def operating_points(self, model, record: dict[str, Any]) -> list[OperatingPoint]:
        """Full depth (every token runs all N blocks: exactly vanilla BART), then for confidence exits the shipped
        thresholds T_n and a few settings along the Pareto front of the latest recorded threshold search (a
        calibration's, else training's), or for learned exits the model as saved."""
        points = [OperatingPoint("full depth", {"adaptive": False})]
        config = model.config
        if config.exit_prediction != "confidence":
            return points + [OperatingPoint(f"{config.exit_prediction} exits", {"adaptive": True}, chosen=True)]
        search = (record.get("calibrations") or [{}])[-1].get("search") or record.get("threshold_search") or {}
        front = threshold_front(search.get("trials", []))
        step = max(1, -(-len(front) // BENCHMARK_THRESHOLD_SETTINGS))
        saved = config.resolved_confidence_thresholds()
        by_label: dict[str, OperatingPoint] = {}
        for thresholds in [*front[::step], saved]:
            thresholds = [float(t) for t in thresholds[: config.num_exits - 1]]
            label = "T=" + "/".join(f"{t:.3g}" for t in thresholds)
            if all(t >= 1.0 for t in thresholds) and thresholds != saved:
                continue  # never exits: the full-depth point already
            by_label[label] = OperatingPoint(label, {"adaptive": True, "confidence_thresholds": thresholds},
                                             chosen=thresholds == saved)
        return points + list(by_label.values())

    def set_operating_point(self, model, point: OperatingPoint) -> None:
        model.config.adaptive = point.values["adaptive"]
        if "confidence_thresholds" in point.values:
            model.config.confidence_thresholds = list(point.values["confidence_thresholds"])


def threshold_front(trials: list[dict[str, Any]]) -> list[list[float]]:
    """The thresholds of the search trials no other trial beats (a higher score at an average exit no larger), by
    increasing average exit."""
    front, best = [], float("-inf")
    for trial in sorted(trials, key=lambda trial: (trial["average_exit"], -trial["score"])):
        if trial["score"] > best:
            front.append(list(trial["thresholds"]))
            best = trial["score"]
    return front
