"""DeeBERT fine-tuned the way a stock transformers script does it: one plain `Trainer(model=...).train()` on the
labelled data, no zoo recipe. The model's own training loss is the joint objective (every off-ramp and the final
classifier at once), so the off-ramps come out trained; the entropy threshold is then chosen by
`adaptive-zoo calibrate` and the folder measured by `adaptive-zoo evaluate`, as BENCHMARKS.md lists:

    python investigations/finetune_deebert_stock_trainer.py --output-dir runs/deebert-stock-trainer
    adaptive-zoo calibrate runs/deebert-stock-trainer --dataset bbc_news
    adaptive-zoo evaluate runs/deebert-stock-trainer --dataset bbc_news --json runs/deebert-stock-trainer.json

The model starts exactly as the zoo recipe's does (`build_deebert`: MiniLM, off-ramp poolers copied from the
pretrained pooler, token-mean off-ramps for a mean-pooled backbone) and trains with the recipe's stage-1 budget
(2 epochs, lr 5e-5, batch 16, max length 128), so the two can be compared.
"""

from __future__ import annotations

import argparse
import time

from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed

from adaptive_zoo.backbones import resolve_base_model
from adaptive_zoo.data import load_task_data
from adaptive_zoo.training.deebert import build_deebert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/deebert-stock-trainer")
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
    model = build_deebert(base, task.label_names)
    train = task.dataset["train"].map(lambda batch: tokenizer(batch["text"], truncation=True), batched=True,
                                      remove_columns=["text"])
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=args.output_dir + "-training", num_train_epochs=args.num_train_epochs,
            learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size, warmup_steps=0.1,
            seed=args.seed, save_strategy="no", report_to="none", logging_strategy="epoch",
        ),
        train_dataset=train,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    start = time.perf_counter()
    trainer.train()
    print(f"stock Trainer fine-tune: {(time.perf_counter() - start) / 60:.1f} min")
    trainer.save_model(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    print(f"saved {args.output_dir}; entropy_threshold={model.config.entropy_threshold} (none chosen yet): run "
          f"`adaptive-zoo calibrate {args.output_dir} --dataset {args.dataset}`")


if __name__ == "__main__":
    main()
