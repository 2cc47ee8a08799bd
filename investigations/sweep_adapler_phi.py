"""AdapLeR's speed-up against accuracy over a few phi values (the analogue of the paper's Figure 3).

phi weighs the length loss (eq. 8): the larger it is, the harder eta and theta push towards removing tokens.
Phases 1 and 2 do not depend on phi, so the sweep reuses them from a finished `adaptive-zoo train adapler` run
(its `<output-dir>-training` folder: the phase-1 checkpoints and the stored saliencies) and reruns phase 3 once
per phi (phis already measured in the output folder are kept, so a sweep can be extended). Each phase-3 run's
final checkpoint is measured on the test split: accuracy and executed-FLOPs speed-up against the vanilla
transformers model with the same weights (and, with --wallclock, the throughput speed-up at batch 32). Prints a markdown table, writes the points as JSON and the plot as PNG.

    adaptive-zoo train adapler --dataset tweet_sentiment --preset sst2 ... --output-dir runs/adapler-tweet
    python investigations/sweep_adapler_phi.py --run-dir runs/adapler-tweet --phi 5e-4 5e-3 5e-2 5e-1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data, tokenize_classification
from adaptive_zoo.evaluation.classification import (
    accuracy_of,
    encode_examples,
    kept_token_summary,
    predict_with_flops,
    vanilla_counterpart,
)
from adaptive_zoo.evaluation.measure import latency_and_throughput, pad_batch
from adaptive_zoo.evaluation.plots import plot_tradeoff
from adaptive_zoo.training.adapler import (
    AdapLeRTrainingArguments,
    build_adapler,
    check_saliency_alignment,
    epoch_checkpoints,
    train_length_reduction,
)
from adaptive_zoo.training.common import trainer_work_dir


def measure(model, tokenizer, split, *, max_length: int, batch_size: int, wallclock: bool) -> dict:
    features = encode_examples(tokenizer, split["text"], max_length)
    pad_id = tokenizer.pad_token_id or 0
    batches = [pad_batch(features[i : i + batch_size], pad_id) for i in range(0, len(features), batch_size)]
    gold = torch.as_tensor(split["label"])
    vanilla = vanilla_counterpart(model)
    adaptive, plain = predict_with_flops(model, batches), predict_with_flops(vanilla, batches)
    point = {"accuracy": float((adaptive.labels == gold).float().mean()), "flops_speedup": plain.flops / adaptive.flops,
             **kept_token_summary(adaptive.kept_tokens)}
    if wallclock:
        timing = latency_and_throughput({"vanilla": vanilla, "adaptive": model}, features, baseline="vanilla",
                                        batch_size=batch_size, latency_samples=1, repeats=3, pad_token_id=pad_id)
        point["throughput_speedup"] = timing["throughput_speedup"]["adaptive"]
    return point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="Output folder of a finished `train adapler` run.")
    parser.add_argument("--phi", type=float, nargs="+", required=True)
    parser.add_argument("--output-dir", default=None, help="Default: <run-dir>-phi-sweep.")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--wallclock", action="store_true", help="Also time throughput (slower).")
    parser.add_argument("--adaptive-epochs", type=float, default=None, help="Phase-3 epochs (default: the run's).")
    parser.add_argument("--contribution-predictor-learning-rate", type=float, default=None,
                        help="Phase-3 learning rate of the contribution predictors (default: the run's).")
    parser.add_argument("--max-train-samples", type=int, default=None,
                        help="Phase 3 on the first N training examples of the run (default: all).")
    args = parser.parse_args()

    run_dir = Path(args.run_dir)
    record = json.loads((run_dir / "adaptive_zoo_results.json").read_text())
    training = {k: v for k, v in record["training"].items() if k in AdapLeRTrainingArguments.__dataclass_fields__}
    # Runs recorded before the predictors had their own learning rate trained them at the weights' rate (None).
    training.setdefault("contribution_predictor_learning_rate", None)
    work = trainer_work_dir(run_dir)
    phase1_best = work / "phase1" / record["saliency_checkpoints"][0]
    train_with_saliency = load_from_disk(str(work / "saliency"))
    check_saliency_alignment(train_with_saliency)
    if args.max_train_samples is not None:
        train_with_saliency = train_with_saliency.select(range(min(args.max_train_samples, len(train_with_saliency))))
    if args.adaptive_epochs is not None:
        training["adaptive_epochs"] = args.adaptive_epochs
    if args.contribution_predictor_learning_rate is not None:
        training["contribution_predictor_learning_rate"] = args.contribution_predictor_learning_rate
    output_dir = Path(args.output_dir or f"{run_dir}-phi-sweep")

    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    task = load_task_data(record["dataset"], seed=training["seed"])
    label_names = task.label_names
    encoded_validation = tokenize_classification(task.dataset, tokenizer, training["max_length"])["validation"]
    split = task.dataset[args.split]
    max_length = training["max_length"]
    finetuned = accuracy_of(AutoModelForSequenceClassification.from_pretrained(phase1_best), tokenizer,
                            split["text"], split["label"], batch_size=args.batch_size, max_length=max_length)

    # A sweep adds to the points already measured in its output folder (same run), so it can be extended; points
    # are told apart by phi and the contribution predictors' learning rate (one line each in the plot).
    previous = output_dir / "phi_sweep.json"
    points = json.loads(previous.read_text())["points"] if previous.exists() else []
    predictor_lr = training.get("contribution_predictor_learning_rate") or training["adaptive_learning_rate"]
    for point in points:
        point.setdefault("contribution_predictor_learning_rate", training["adaptive_learning_rate"])
    measured = {(point["phi"], point["contribution_predictor_learning_rate"]) for point in points}
    for phi in args.phi:
        if (phi, predictor_lr) in measured:
            continue
        name = f"phi-{phi:g}" if args.contribution_predictor_learning_rate is None else f"phi-{phi:g}-cp-lr-{predictor_lr:g}"
        run_args = AdapLeRTrainingArguments(**{**training, "output_dir": str(output_dir / name), "phi": phi})
        set_seed(run_args.seed)
        model = build_adapler(str(phase1_best), label_names, gamma=run_args.gamma, phi=phi,
                              lambda_init=run_args.lambda_init, lambda_growth=run_args.lambda_growth)
        trainer, phase3_dir = train_length_reduction(model, tokenizer, train_with_saliency, encoded_validation,
                                                     run_args)
        final = epoch_checkpoints(trainer.state, phase3_dir)[-1]
        trained = AutoModelForSequenceClassification.from_pretrained(final).eval()
        point = {"phi": phi, "contribution_predictor_learning_rate": predictor_lr, "checkpoint": str(final),
                 **measure(trained, tokenizer, split, max_length=max_length, batch_size=args.batch_size,
                           wallclock=args.wallclock)}
        points.append(point)
        print(json.dumps(point), flush=True)
    points.sort(key=lambda point: (point["contribution_predictor_learning_rate"], point["phi"]))

    summary = {"run_dir": str(run_dir), "dataset": record["dataset"], "split": args.split,
               "phase3_train_samples": len(train_with_saliency),
               "finetuned_accuracy": finetuned, "training": training, "points": points}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "phi_sweep.json").write_text(json.dumps(summary, indent=2))
    plotted = [{**point, "accuracy_pct": 100 * point["accuracy"],
                "series": f"predictor lr {point['contribution_predictor_learning_rate']:g}"} for point in points]
    image = plot_tradeoff(plotted, "flops_speedup", "accuracy_pct", output_dir / "phi_sweep.png", label_key="phi",
                          series_key="series",
                          title=f"AdapLeR, {record['dataset']} ({args.split}): accuracy vs speed-up over phi",
                          baseline_y=100 * finetuned, baseline_label="fine-tuned BERT (phase 1)",
                          xlabel="executed-FLOPs speed-up vs vanilla BERT", ylabel="accuracy (%)")
    has_wallclock = any("throughput_speedup" in point for point in points)
    print(f"| predictor lr | phi | accuracy | executed-FLOPs speed-up |"
          f"{' throughput speed-up (batch 32) |' if has_wallclock else ''} tokens entering layer 1 → last layer |")
    print(f"|---|---|---|---|{'---|' if has_wallclock else ''}---|")
    for point in points:
        wall = ""
        if has_wallclock:
            wall = f" {point['throughput_speedup']:.2f}x |" if "throughput_speedup" in point else " not timed |"
        kept = point["mean_kept_tokens_per_layer"]
        print(f"| {point['contribution_predictor_learning_rate']:g} | {point['phi']:g} | {100 * point['accuracy']:.2f} "
              f"| {point['flops_speedup']:.2f}x |{wall} {kept[0]:.0f} → {kept[-1]:.0f} |")
    print(f"fine-tuned accuracy (phase 1): {100 * finetuned:.2f}; plot: {image}")


if __name__ == "__main__":
    main()
