"""A classifier fine-tuned by one plain transformers `Trainer(model=...).train()` with the zoo's stage-1 budget
(2 epochs, lr 5e-5 with 10% warm-up, batch 16, max length 128, seed 42, the same seeded splits), no zoo recipe.
Two questions, one per `--model`:

- `--model deebert`: what does DeeBERT give when a stock script fine-tunes it? Its training loss is the joint
  objective (every off-ramp and the final classifier at once), so the off-ramps come out trained; the entropy
  threshold is then chosen by `adaptive-zoo calibrate` and the folder measured by `adaptive-zoo evaluate`. The
  model starts exactly as the recipe's does (`build_deebert`):

      python investigations/finetune_with_stock_trainer.py --model deebert --output-dir runs/deebert-stock-trainer
      adaptive-zoo calibrate runs/deebert-stock-trainer --dataset bbc_news
      adaptive-zoo evaluate runs/deebert-stock-trainer --dataset bbc_news --json runs/deebert-stock-trainer.json

- `--model vanilla`: the "classifier a user already fine-tuned", a plain `BertForSequenceClassification` saved as a
  plain transformers folder whose `id2label` holds the dataset's class names, which `adaptive-zoo train deebert
  --base-model <it>` converts (stage 1 skipped):

      python investigations/finetune_with_stock_trainer.py --model vanilla --output-dir runs/bert-minilm-bbc_news
      adaptive-zoo train deebert --base-model runs/bert-minilm-bbc_news --dataset bbc_news \\
          --output-dir runs/deebert-from-fine-tuned
"""

from __future__ import annotations

import argparse
import time

from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)

from adaptive_zoo.backbones import resolve_base_model
from adaptive_zoo.data import load_task_data
from adaptive_zoo.training.deebert import build_deebert


def build_model(kind: str, base: str, names: list[str]):
    if kind == "deebert":
        return build_deebert(base, names)
    return AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("deebert", "vanilla"), required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--dataset", default="bbc_news")
    parser.add_argument("--base-model", default="minilm")
    parser.add_argument("--num-train-epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    set_seed(args.seed)
    task = load_task_data(args.dataset, seed=args.seed)
    base = resolve_base_model(args.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.model_max_length = args.max_length
    model = build_model(args.model, base, task.label_names)
    train = task.dataset["train"].map(lambda batch: tokenizer(batch["text"], truncation=True), batched=True,
                                      remove_columns=["text"])
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=args.output_dir + "-training", num_train_epochs=args.num_train_epochs,
            learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size, warmup_steps=0.1,
            seed=args.seed, save_strategy="no", report_to="none", logging_strategy="epoch",
            # the vanilla classifier shuffles like the recipe's stage 1; the DeeBERT figures in the notes were
            # measured without a data seed, which this keeps
            data_seed=args.seed if args.model == "vanilla" else None,
        ),
        train_dataset=train,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    start = time.perf_counter()
    trainer.train()
    print(f"stock Trainer fine-tune ({args.model}): {(time.perf_counter() - start) / 60:.1f} min")
    trainer.save_model(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    if args.model == "deebert":
        print(f"saved {args.output_dir}; no entropy threshold chosen yet: run "
              f"`adaptive-zoo calibrate {args.output_dir} --dataset {args.dataset}`")


if __name__ == "__main__":
    main()
