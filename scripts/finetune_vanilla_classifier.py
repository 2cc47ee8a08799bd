"""A vanilla `BertForSequenceClassification` fine-tuned the way the quickstart's stage 1 fine-tunes DeeBERT's backbone
and final classifier (2 epochs, lr 5e-5 with 10% warm-up, batch 16, max length 128, seed 42, the same seeded
splits), saved as a plain transformers folder: the "classifier a user already fine-tuned" that
`adaptive-zoo train deebert --base-model <it>` converts, as BENCHMARKS.md lists:

    python scripts/finetune_vanilla_classifier.py --output-dir runs/bert-minilm-bbc_news
    adaptive-zoo train deebert --base-model runs/bert-minilm-bbc_news --dataset bbc_news \\
        --off-ramp-pooling mean --output-dir runs/deebert-from-fine-tuned

The folder's `id2label` holds the dataset's class names, so the conversion can check them.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="runs/bert-minilm-bbc_news")
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
    names = task.label_names
    base = resolve_base_model(args.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.model_max_length = args.max_length
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})
    train = task.dataset["train"].map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=args.max_length),
                                      batched=True, remove_columns=["text"])
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=args.output_dir + "-training", num_train_epochs=args.num_train_epochs,
            learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size, warmup_steps=0.1,
            seed=args.seed, data_seed=args.seed, save_strategy="no", report_to="none", logging_strategy="epoch",
            use_cpu=True,
        ),
        train_dataset=train,
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    start = time.perf_counter()
    trainer.train()
    print(f"vanilla classifier fine-tune: {(time.perf_counter() - start) / 60:.1f} min")
    trainer.save_model(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)


if __name__ == "__main__":
    main()
