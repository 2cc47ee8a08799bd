"""End-to-end recipes behind `adaptive-zoo train <method>`: data -> training -> tuning on validation ->
measurement on test -> a Hub-ready folder (weights, code, tokenizer, card, plots, results), written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BartForConditionalGeneration,
    set_seed,
)

from .backbones import KNOWN_BASE_MODELS, resolve_base_model
from .data import load_task_data, select_first, tokenize_classification, tokenize_seq2seq
from .evaluation.classification import accuracy_of, evaluate_classifier, mean_token_exit
from .evaluation.operating_points import (
    choose_confidence_thresholds,
    choose_eta_scale,
    plot_threshold_sweep,
    scale_eta_,
    sweep_entropy_thresholds,
)
from .evaluation.plots import plot_tradeoff
from .evaluation.seq2seq import evaluate_dat, evaluate_seq2seq, rouge_of
from .hashing import save_hash_table
from .hub.cards import classification_eval_results, dat_eval_results, render_model_card, summarization_eval_results
from .hub.folder import atomic_output_dir, check_hub_folder
from .hub.verify import verify_fresh_process_load
from .models.dat import DepthAdaptiveTransformer
from .progress import announce
from .training.adapler import (
    ADAPLER_PRESETS,
    AdapLeRTrainingArguments,
    best_checkpoints,
    build_adapler,
    epoch_checkpoints,
    extract_saliency,
    finetune_backbone,
    finished_run_state,
    load_saliency,
    save_saliency,
    train_length_reduction,
)
from .training.common import trainer_work_dir
from .training.dat import (
    DATTrainingArguments,
    build_dat,
    dat_config_from_bart,
    finetune_dat,
    keep_lowest_encoder_layers,
)
from .training.deebert import DeeBertTrainingArguments, build_deebert, train_deebert
from .training.hashee import (
    HashEETrainingArguments,
    build_hashee_bart,
    build_hashee_bert,
    finetune_classifier,
    finetune_seq2seq,
    input_embeddings_for,
    table_for,
    vanilla_bert,
)
from .training.warm_start import bart_from_bert

logger = logging.getLogger(__name__)

RESULTS_FILE = "adaptive_zoo_results.json"
SWEEP_IMAGE = "threshold_sweep.png"
OFF_RAMP_POOLING_TEXT = {
    "cls": "the [CLS] state, as in the paper.",
    "mean": "the mean of the token states (`off_ramp_pooling=\"mean\"`): the backbone was pretrained with mean "
    "pooling, and its early-layer [CLS] state is nearly the same for every input. The final classifier is "
    "BERT's own [CLS] pooler.",
}


def hub_base_model(base_model: str) -> str | None:
    """The Hub id a card's `base_model` metadata should name (none for a local folder)."""
    if base_model == "minilm":
        return "sentence-transformers/all-MiniLM-L6-v2"
    return None if os.path.exists(base_model) else base_model


def command_line(fallback: str) -> str:
    """The command that produced this run, for the card's "reproduce" section."""
    if sys.argv[1:] and Path(sys.argv[0]).name in ("adaptive-zoo", "cli.py", "__main__.py"):
        return "adaptive-zoo " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return fallback


def write_classifier_folder(
    output_dir: str,
    *,
    method: str,
    model,
    tokenizer,
    task,
    dataset: str,
    base_model: str,
    results: dict[str, Any],
    record: dict[str, Any],
    tags: list[str],
    add_files: Callable[[Path], Any] | None = None,
    eval_results: list | None = None,
    task_tag: str = "text-classification",
    **card_values: Any,
) -> None:
    """Write a trained model's Hub folder atomically: weights, code, tokenizer, the results record, the
    model card rendered from `model_cards/<method>.md` (`card_values` fill the family's own fields), and
    whatever `add_files` adds; checked complete before it is switched in. Classifiers get the classification
    `model-index` entries unless `eval_results` are given."""
    model_name = f"{method}-{Path(base_model).name}-{Path(dataset).stem}"
    announce(f"writing the Hub folder {output_dir} (weights, code, tokenizer, model card, results)")
    if task_tag == "text-classification" and getattr(model.config, "special_token_ids", None) is None:
        # Saved classifiers refuse input made of special tokens only (an empty or emoji-only text) in their forward.
        model.config.special_token_ids = sorted(tokenizer.all_special_ids)
    with atomic_output_dir(output_dir) as folder:
        folder = Path(folder)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if add_files is not None:
            add_files(folder)
        full_record = {"method": method, "dataset": dataset, "base_model": base_model, "split": "test",
                       "test": results, **record}
        (folder / RESULTS_FILE).write_text(json.dumps(full_record, indent=2, default=str))
        card = render_model_card(
            method,
            model_name=model_name,
            base_model=hub_base_model(base_model),
            dataset_name=dataset,
            eval_results=eval_results or classification_eval_results(results, dataset_name=dataset, split="test"),
            tags=[method, task_tag, *tags],
            pipeline_tag=task_tag,
            base_model_description=KNOWN_BASE_MODELS.get(base_model, base_model),
            dataset_description=f"`{dataset}` (adaptive-zoo bundled/local data), splits "
            + ", ".join(f"{k} {len(v)}" for k, v in task.dataset.items()),
            label_names=task.label_names,
            num_layers=model.config.num_hidden_layers,
            eval_split="test",
            results=results,
            repo_id="OWNER/" + model_name,
            train_command=command_line(f"adaptive-zoo train {method} --dataset {dataset} --output-dir OUTPUT_DIR"),
            **card_values,
        )
        card.save(folder / "README.md")
        check_hub_folder(folder, require_tokenizer=True)  # nothing incomplete is switched in


def task_data(
    dataset: str,
    *,
    seed: int,
    max_train_samples: int | None,
    max_eval_samples: int | None,
    text_column: str | None = None,
    label_column: str | None = None,
    required_task: str | None = None,
    what_needs_it: str = "this method",
):
    """A dataset's seeded splits, the training split cut to `max_train_samples` and validation/test to
    `max_eval_samples`; a dataset of another kind than `required_task` ("classification" or "seq2seq") is refused."""
    task = load_task_data(dataset, seed=seed, text_column=text_column, label_column=label_column)
    if required_task is not None and task.task != required_task:
        raise ValueError(f"Dataset {dataset!r} is a {task.task} dataset; {what_needs_it} needs a {required_task} "
                         "dataset.")
    task.dataset["train"] = select_first(task.dataset["train"], max_train_samples)
    for split in ("validation", "test"):
        task.dataset[split] = select_first(task.dataset[split], max_eval_samples)
    announce(f"dataset {dataset}: " + ", ".join(f"{split} {len(data):,}" for split, data in task.dataset.items())
             + f" {'texts' if task.task == 'classification' else 'text/summary pairs'}")
    return task


def classification_data(dataset: str, **kwargs):
    return task_data(dataset, required_task="classification", **kwargs)


def train_deebert_recipe(
    *,
    dataset: str = "bbc_news",
    text_column: str | None = None,
    label_column: str | None = None,
    output_dir: str,
    base_model: str = "minilm",
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    num_train_epochs: float = 2.0,
    off_ramp_epochs: float = 2.0,
    max_length: int = 128,
    batch_size: int = 16,
    seed: int = 42,
    learning_rate: float = 5e-5,
    accuracy_budget: float = 1.0,
    off_ramp_pooling: str = "auto",
    off_ramp_learning_rate: float = 1e-3,
    eval_batch_size: int = 32,
    wallclock_repeats: int = 5,
) -> dict[str, Any] | None:
    """Train DeeBERT, choose S on validation, measure on test, write the Hub folder. Returns the test report
    (None on non-main processes of a distributed run, which only take part in training)."""
    set_seed(seed)  # the new heads are initialised before the Trainer seeds anything
    task = classification_data(dataset, seed=seed, max_train_samples=max_train_samples,
                               max_eval_samples=max_eval_samples, text_column=text_column, label_column=label_column)
    base_path = resolve_base_model(base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    tokenizer.model_max_length = max_length  # what pipelines truncate to, saved with the tokenizer
    pooling = {} if off_ramp_pooling == "auto" else {"off_ramp_pooling": off_ramp_pooling}
    model = build_deebert(base_path, task.label_names, **pooling)
    args = DeeBertTrainingArguments(
        output_dir=output_dir, num_train_epochs=num_train_epochs, off_ramp_epochs=off_ramp_epochs,
        learning_rate=learning_rate, off_ramp_learning_rate=off_ramp_learning_rate,
        max_length=max_length, batch_size=batch_size, seed=seed,
    )
    model, stage_metrics = train_deebert(model, tokenizer, task.dataset, args)
    if not stage_metrics.pop("is_main_process"):
        return None

    validation, test = task.dataset["validation"], task.dataset["test"]
    sweep = sweep_entropy_thresholds(
        model, tokenizer, validation["text"], validation["label"], accuracy_budget=accuracy_budget,
        batch_size=eval_batch_size, max_length=max_length,
    )
    model.config.entropy_threshold = sweep.chosen_threshold
    results = evaluate_classifier(
        model, tokenizer, test["text"], test["label"], batch_size=eval_batch_size, max_length=max_length,
        repeats=wallclock_repeats,
    )
    logger.info("Test results: %s", results)

    write_classifier_folder(
        output_dir, method="deebert", model=model, tokenizer=tokenizer, task=task, dataset=dataset,
        base_model=base_model, results=results, tags=["early-exit"],
        record={"validation_sweep": sweep.to_dict(), "training": {**vars(args), **stage_metrics}},
        add_files=lambda folder: plot_threshold_sweep(sweep, folder / SWEEP_IMAGE),
        training=vars(args),
        off_ramp_pooling_text=OFF_RAMP_POOLING_TEXT[model.config.off_ramp_pooling],
        threshold_text="off (never exit)" if sweep.chosen_threshold is None else f"{sweep.chosen_threshold:.4g} nats",
        sweep_image=SWEEP_IMAGE,
        accuracy_budget=accuracy_budget,
        full_depth_accuracy=sweep.full_depth_accuracy,
        pretrained_note="the embeddings, encoder layers and pooler come from the pretrained base model",
    )
    return results


def train_adapler_recipe(
    *,
    dataset: str = "bbc_news",
    text_column: str | None = None,
    label_column: str | None = None,
    output_dir: str,
    base_model: str = "minilm",
    preset: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    accuracy_budget: float = 1.0,
    eval_batch_size: int = 32,
    wallclock_repeats: int = 5,
    reuse_phases_from: str | None = None,
    **training_overrides,
) -> dict[str, Any] | None:
    """AdapLeR's three phases behind one call: fine-tune (every epoch kept), saliency from the three best
    checkpoints, adaptive length-reduction training, then the operating point (phase-3 checkpoint and η scale)
    with the best measured speed-up within `accuracy_budget` points of phase 1 is measured on test and written as
    the Hub folder.

    `reuse_phases_from`: the output folder of an earlier run on the same data; its phase-1 checkpoints and stored
    saliencies are used and only phase 3 runs (phases 1-2 do not depend on phase 3's settings). A saliency file
    that does not match this run's training data is an error."""
    if preset is not None and preset not in ADAPLER_PRESETS:
        raise ValueError(f"Unknown AdapLeR preset {preset!r}; known: {', '.join(sorted(ADAPLER_PRESETS))}.")
    settings = {**(ADAPLER_PRESETS[preset] if preset else {}),
                **{k: v for k, v in training_overrides.items() if v is not None}}
    args = AdapLeRTrainingArguments(output_dir=output_dir, **settings)
    set_seed(args.seed)
    task = classification_data(dataset, seed=args.seed, max_train_samples=max_train_samples,
                               max_eval_samples=max_eval_samples, text_column=text_column, label_column=label_column)
    base_path = resolve_base_model(base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    tokenizer.model_max_length = args.max_length
    encoded = tokenize_classification(task.dataset, tokenizer, args.max_length)

    if reuse_phases_from is None:
        phase1, phase1_dir = finetune_backbone(base_path, task.label_names, tokenizer, encoded, args)
        phase1_state = phase1.state
    else:
        phase1_dir = trainer_work_dir(reuse_phases_from) / "phase1"
        phase1_state = finished_run_state(phase1_dir)
    checkpoints = best_checkpoints(phase1_state, phase1_dir, k=args.saliency_checkpoints)
    phase1_accuracy = max(e["eval_accuracy"] for e in phase1_state.log_history if "eval_accuracy" in e)
    if reuse_phases_from is None:
        saliency = extract_saliency(checkpoints, encoded["train"], tokenizer)
        train_with_saliency = save_saliency(encoded["train"], saliency, trainer_work_dir(output_dir) / "saliency")
    else:
        train_with_saliency = load_saliency(trainer_work_dir(reuse_phases_from) / "saliency", encoded["train"])

    init = str(checkpoints[0]) if args.phase3_init == "finetuned" else base_path
    model = build_adapler(init, task.label_names, gamma=args.gamma, phi=args.phi, lambda_init=args.lambda_init,
                          lambda_growth=args.lambda_growth)
    phase3, phase3_dir = train_length_reduction(model, tokenizer, train_with_saliency, encoded["validation"], args)
    if not phase3.is_world_process_zero():
        return None
    chosen, eta_scale, selection = choose_eta_scale(
        epoch_checkpoints(phase3.state, phase3_dir), tokenizer, task.dataset["validation"],
        reference_accuracy=phase1_accuracy, accuracy_budget=accuracy_budget, max_length=args.max_length,
        eta_scales=args.eta_scales, batch_size=eval_batch_size,
    )
    model = AutoModelForSequenceClassification.from_pretrained(chosen).eval()
    learned_eta = [float(v) for v in model.eta.detach().tolist()]
    scale_eta_(model, eta_scale)
    model.sync_config_from_parameters()
    test = task.dataset["test"]
    results = evaluate_classifier(model, tokenizer, test["text"], test["label"], batch_size=eval_batch_size,
                                  max_length=args.max_length, repeats=wallclock_repeats)
    # The paper's comparison: the adaptive model against the fine-tuned model it started from (phase 1's best).
    finetuned = AutoModelForSequenceClassification.from_pretrained(checkpoints[0])
    results["finetuned_accuracy"] = accuracy_of(finetuned, tokenizer, test["text"], test["label"],
                                                batch_size=eval_batch_size, max_length=args.max_length)
    results["finetuned_checkpoint"] = checkpoints[0].name

    write_classifier_folder(
        output_dir, method="adapler", model=model, tokenizer=tokenizer, task=task, dataset=dataset,
        base_model=base_model, results=results, tags=["token-pruning"],
        record={"preset": preset, "phase1_validation_accuracy": phase1_accuracy,
                "saliency_checkpoints": [c.name for c in checkpoints], "phase3_selection": selection,
                "phases_1_2_from": str(phase1_dir.parent), "learned_eta": learned_eta, "eta_scale": eta_scale,
                "training": {**vars(args), "world_size": phase3.args.world_size}},
        training=vars(args),
        eta_text=", ".join(f"{value:.3f}" for value in model.config.eta),
        theta_text=", ".join(f"{value:.3f}" for value in model.config.theta),
        kept_text=" → ".join(f"{value:.1f}" for value in results["mean_kept_tokens_per_layer"]),
        beta=model.config.beta,
        accuracy_budget=accuracy_budget,
        eta_scale=eta_scale,
    )
    return results


def train_hashee_recipe(
    *,
    dataset: str = "tweet_sentiment",
    text_column: str | None = None,
    label_column: str | None = None,
    output_dir: str,
    base_model: str = "minilm",
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    train_vanilla: bool = False,
    eval_batch_size: int = 32,
    wallclock_repeats: int = 5,
    **training_overrides,
) -> dict[str, Any] | None:
    """HashEE behind one call: the hash table from the training split (or a prebuilt one), fine-tuning with the
    token exits on, and measurement on test against the vanilla model with the same weights. A classification
    dataset gives HashEE-BERT; a summarization dataset gives HashEE-BART, warm-started from the BERT base model.
    `train_vanilla` also fine-tunes the same backbone the same way without exits, the paper's baseline."""
    args = HashEETrainingArguments(output_dir=output_dir, **{k: v for k, v in training_overrides.items()
                                                             if v is not None})
    set_seed(args.seed)
    task = task_data(dataset, seed=args.seed, max_train_samples=max_train_samples, max_eval_samples=max_eval_samples,
                     text_column=text_column, label_column=label_column)
    if task.task == "classification" and args.cross_attention_init is not None:
        raise ValueError("--cross-attention-init sets up the warm-started BART of a summarization dataset; "
                         f"{dataset!r} is a classification dataset (HashEE-BERT has no cross-attention).")
    base_path = resolve_base_model(base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    base_config = AutoConfig.from_pretrained(base_path)
    if args.max_length > base_config.max_position_embeddings:
        raise ValueError(f"max_length={args.max_length} exceeds the base model's "
                         f"{base_config.max_position_embeddings} positions.")
    tokenizer.model_max_length = args.max_length
    test = task.dataset["test"]
    record: dict[str, Any] = {"max_train_samples": max_train_samples, "max_eval_samples": max_eval_samples}
    card_extra: dict[str, Any] = {}

    if task.task == "classification":
        encoded = tokenize_classification(task.dataset, tokenizer, args.max_length)
        table = table_for(args, tokenizer, task.dataset["train"], num_layers=base_config.num_hidden_layers,
                          vocab_size=base_config.vocab_size,
                          embeddings=input_embeddings_for(args.hash_function, base_path))
        trainer = finetune_classifier(build_hashee_bert(base_path, task.label_names, table, tokenizer.all_special_ids), tokenizer, encoded,
                                      args, "hashee")
        if not trainer.is_world_process_zero():
            return None
        model = trainer.model.eval()
        results = evaluate_classifier(model, tokenizer, test["text"], test["label"], batch_size=eval_batch_size,
                                      max_length=args.max_length, repeats=wallclock_repeats)
        results["mean_exit_layer_per_token"] = mean_token_exit(model, tokenizer, test["text"], args.max_length)
        if train_vanilla:
            vanilla = finetune_classifier(vanilla_bert(base_path, task.label_names), tokenizer, encoded, args,
                                          "vanilla").model
            results["vanilla_finetuned_accuracy"] = accuracy_of(
                vanilla, tokenizer, test["text"], test["label"], batch_size=eval_batch_size,
                max_length=args.max_length)
        eval_results, task_tag = None, "text-classification"
    else:
        # BART takes no token type ids: a tokenizer that returns them would break generate() and pipelines
        tokenizer = AutoTokenizer.from_pretrained(base_path, model_input_names=["input_ids", "attention_mask"])
        tokenizer.model_max_length = args.max_length
        warm_dir = trainer_work_dir(output_dir) / "warm_start"
        warm_start_options = ({} if args.cross_attention_init is None
                              else {"cross_attention_init": args.cross_attention_init})
        bart, warm_start = bart_from_bert(base_path, return_report=True, **warm_start_options)
        bart.save_pretrained(warm_dir)
        tokenizer.save_pretrained(warm_dir)
        record["warm_start"] = warm_start.parameter_counts(bart)
        card_extra["warm_start_text"] = warm_start.to_markdown(bart)
        encoded = tokenize_seq2seq(task.dataset, tokenizer, args.max_length, args.max_target_length)
        table = table_for(args, tokenizer, task.dataset["train"], num_layers=bart.config.encoder_layers,
                          vocab_size=bart.config.vocab_size, embeddings=bart.get_input_embeddings().weight.detach())
        trainer = finetune_seq2seq(build_hashee_bart(warm_dir, table, tokenizer.all_special_ids), tokenizer, encoded, args, "hashee")
        if not trainer.is_world_process_zero():
            return None
        model = trainer.model.eval()
        model.config.use_cache = True  # the Trainer saves use_cache=False; generation (and users) want the cache
        generation = dict(batch_size=eval_batch_size, max_source_length=args.max_length,
                          max_new_tokens=args.max_target_length, num_beams=args.num_beams)
        results = evaluate_seq2seq(model, tokenizer, test["text"], test["summary"], repeats=wallclock_repeats,
                                   **generation)
        if train_vanilla:
            vanilla = finetune_seq2seq(BartForConditionalGeneration.from_pretrained(warm_dir), tokenizer, encoded,
                                       args, "vanilla").model.eval()
            vanilla.config.use_cache = True
            results["vanilla_finetuned_rouge"] = rouge_of(vanilla, tokenizer, test["text"], test["summary"],
                                                          **generation)
        eval_results = summarization_eval_results(results, dataset_name=dataset, split="test")
        task_tag = "summarization"

    table_summary = table.summary(test["text"], tokenizer=tokenizer, max_length=args.max_length)
    write_classifier_folder(
        output_dir, method="hashee", model=model, tokenizer=tokenizer, task=task, dataset=dataset,
        base_model=base_model, results=results, tags=["token-early-exit", "hash-routing"],
        record={**record, "hash_table": table_summary, "training": vars(args)},
        training=vars(args), eval_results=eval_results, task_tag=task_tag, task_kind=task.task, table=table_summary,
        **card_extra,
        add_files=lambda folder: save_hash_table(table, folder / "hash_table.safetensors"),
    )
    return results


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


def train_dat_recipe(
    *,
    dataset: str = "bbc_headlines",
    text_column: str | None = None,
    label_column: str | None = None,
    output_dir: str,
    base_model: str = "minilm",
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    threshold_samples: int | None = 200,
    eval_batch_size: int = 32,
    wallclock_repeats: int = 5,
    verify_load: bool = True,
    **training_overrides,
) -> dict[str, Any] | None:
    """The Depth-Adaptive Transformer behind one call: a BART warm-started from the BERT base model (or, with
    `from_scratch`, randomly initialised in the same shape), fine-tuned with `Seq2SeqTrainer` under the aligned
    or mixed regime (plus the exit predictor's loss), confidence thresholds tuned on validation by random search
    under the compute budget (`exit_prediction="confidence"`; at most `threshold_samples` validation examples),
    then measured on test against the same weights at full depth and the vanilla BART, and written as a Hub
    folder checked to load in a fresh process with `trust_remote_code`. `training_overrides` are the fields of
    `DATTrainingArguments`."""
    args = DATTrainingArguments(output_dir=output_dir, **{k: v for k, v in training_overrides.items()
                                                          if v is not None})
    set_seed(args.seed)
    task = task_data(dataset, seed=args.seed, max_train_samples=max_train_samples, max_eval_samples=max_eval_samples,
                     text_column=text_column, label_column=label_column, required_task="seq2seq",
                     what_needs_it="the Depth-Adaptive Transformer (a summarization model: try bbc_headlines or aclsum)")
    base_path = resolve_base_model(base_model)
    base_config = AutoConfig.from_pretrained(base_path)
    for name, length in (("max_length", args.max_length), ("max_target_length", args.max_target_length + 1)):
        if length > base_config.max_position_embeddings:
            raise ValueError(f"{name}={length} exceeds the base model's {base_config.max_position_embeddings} "
                             "positions.")
    # BART takes no token type ids: a tokenizer that returns them would break generate()
    tokenizer = AutoTokenizer.from_pretrained(base_path, model_input_names=["input_ids", "attention_mask"])
    tokenizer.model_max_length = args.max_length

    # The shape (and, unless from scratch, the weights) of the BART; every paper field is validated here,
    # before any training.
    bart, warm_start = bart_from_bert(base_path, decoder_layers=args.decoder_layers, seed=args.seed,
                                      cross_attention_init=args.cross_attention_init, return_report=True)
    keep_lowest_encoder_layers(bart, warm_start, args.encoder_layers)
    config = dat_config_from_bart(bart.config, **args.model_overrides())
    if args.exit_prediction == "confidence" and args.resolved_compute_budget * config.num_exits < 1:
        raise ValueError(
            f"compute_budget={args.resolved_compute_budget} of {config.num_exits} decoder blocks is below 1 block, "
            f"which every token runs; use at least {1 / config.num_exits:.3g}."
        )
    record: dict[str, Any] = {}
    card_extra: dict[str, Any] = {}
    if args.from_scratch:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            model = DepthAdaptiveTransformer(config)
        model.generation_config = bart.generation_config
        record["warm_start"] = {"pretrained": 0, "fresh": sum(p.numel() for p in model.parameters())}
        card_extra["warm_start_text"] = (
            f"None: trained from scratch (`--from-scratch`). A randomly initialised BART with the shape a warm start "
            f"from `{base_model}` gives ({config.encoder_layers} encoder layers, {config.decoder_layers} decoder "
            f"blocks, d_model {config.d_model}, {record['warm_start']['fresh']:,} parameters, all fresh), with that "
            "BERT checkpoint's WordPiece tokenizer (decoder_start/bos = [CLS], eos = [SEP], pad = [PAD]).")
    else:
        warm_dir = trainer_work_dir(output_dir) / "warm_start"
        bart.save_pretrained(warm_dir)
        tokenizer.save_pretrained(warm_dir)
        model = build_dat(warm_dir, **args.model_overrides())
        record["warm_start"] = warm_start.parameter_counts(bart)
        card_extra["warm_start_text"] = warm_start.to_markdown(bart)
    if model.exit_predictor is not None:
        card_extra["warm_start_text"] += "\n- The exit predictor (`exit_predictor.*`) is new, trained on the task."
    del bart

    encoded = tokenize_seq2seq(task.dataset, tokenizer, args.max_length, args.max_target_length)
    trainer = finetune_dat(
        model.train(), tokenizer, encoded["train"], encoded["validation"], trainer_work_dir(output_dir) / "dat",
        num_train_epochs=args.num_train_epochs, learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size, per_device_eval_batch_size=args.batch_size, seed=args.seed,
        data_seed=args.seed, **args.trainer_overrides,
    )
    if not trainer.is_world_process_zero():
        return None
    model = trainer.model.eval()
    model.config.use_cache = True  # the Trainer saves use_cache=False; generation (and users) want the cache
    generation = dict(max_source_length=args.max_length, max_new_tokens=args.max_target_length,
                      num_beams=args.num_beams)

    search = None
    if args.exit_prediction == "confidence":
        validation = select_first(task.dataset["validation"], threshold_samples)
        search = choose_confidence_thresholds(
            model, tokenizer, validation["text"], validation["summary"], budget_fraction=args.resolved_compute_budget,
            num_trials=args.resolved_threshold_trials, seed=args.seed, metric=args.threshold_metric,
            batch_size=eval_batch_size, **generation,
        )
        if search.best is None:
            raise RuntimeError("No threshold setting met the compute budget.")  # "exit at block 1" always does
        model.config.confidence_thresholds = search.best_thresholds
        record["threshold_search"] = {**search.to_dict(), "budget_fraction": args.resolved_compute_budget,
                                      "metric": args.threshold_metric, "num_validation_samples": len(validation),
                                      "full_depth_score": search.trials[0].score}
        card_extra["search"] = record["threshold_search"]

    test = task.dataset["test"]
    results = evaluate_dat(model, tokenizer, test["text"], test["summary"], batch_size=eval_batch_size,
                           repeats=wallclock_repeats, **generation)
    logger.info("Test results: %s", results)

    fresh_load: dict[str, Any] = {}  # filled in the folder before it is switched in (the record and card read it)
    record["fresh_process_load"] = fresh_load

    def add_files(folder: Path) -> None:
        if search is not None:
            points = [{"average_exit": trial.average_exit, "score": trial.score} for trial in search.trials]
            plot_tradeoff(
                points, "average_exit", "score", folder / THRESHOLD_SEARCH_IMAGE, chosen=search.trials.index(search.best),
                baseline_y=search.trials[0].score, baseline_label="full depth",
                title=f"Confidence thresholds on validation (budget: AE <= {search.budget:.2f})",
                xlabel=f"average exit (blocks, of {model.config.num_exits})", ylabel=f"validation {args.threshold_metric}",
            )
        if verify_load:
            fresh_load.update(verify_fresh_process_load(model, tokenizer, folder, list(test["text"][:2]),
                                                        auto_class="AutoModelForSeq2SeqLM"))

    config = model.config
    write_classifier_folder(
        output_dir, method="dat", model=model, tokenizer=tokenizer, task=task, dataset=dataset,
        base_model=base_model, results=results, tags=["depth-adaptive", "early-exit", "text2text-generation"],
        record={**record, "training": vars(args)}, add_files=add_files,
        eval_results=dat_eval_results(results, dataset_name=dataset, split="test"), task_tag="summarization",
        training=vars(args), from_scratch=args.from_scratch, fresh_load=fresh_load,
        exit_prediction_text=EXIT_PREDICTION_TEXT[config.exit_prediction].format(
            oracle=f"{config.oracle} (sigma {config.oracle_sigma}, lambda {config.oracle_depth_penalty})",
            halting=config.halting_threshold),
        search_image=THRESHOLD_SEARCH_IMAGE, dat=config, **card_extra,
    )
    return results
