"""How fast a BART warm-started from MiniLM learns headline generation, with its cross-attention started as a copy of
each layer's BERT self-attention (`bart_from_bert(cross_attention_init="self_attention")`, the zoo's default) or
randomly, as bert2bert does (`"fresh"`). Same data order, steps, learning rate and seed for both; prints the
validation loss and the greedy ROUGE of each after a fixed number of steps.

    python investigations/compare_cross_attention_init.py                  # 200 steps each, about 3 min each on 1 core
    python investigations/compare_cross_attention_init.py --steps 50 --validation-samples 20   # a quick check

Settings: 2 encoder layers and 6 decoder layers (the DAT benchmark's decoder-heavy shape), source length 64,
targets up to 24 tokens, batch 16, AdamW at lr 3e-4 with 10% warm-up then linear decay, gradient clipping at 1.
"""

from __future__ import annotations

import argparse
import random

import torch
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from adaptive_zoo.backbones import resolve_base_model
from adaptive_zoo.data import load_task_data
from adaptive_zoo.evaluation.text_metrics import rouge_scores
from adaptive_zoo.training.dat import keep_lowest_encoder_layers
from adaptive_zoo.training.warm_start import CROSS_ATTENTION_INITS, bart_from_bert


def train_and_score(init: str, args, tokenizer, train, validation) -> dict:
    torch.manual_seed(args.seed)
    model = bart_from_bert(args.base_model, tokenizer=tokenizer, cross_attention_init=init, seed=args.seed)
    keep_lowest_encoder_layers(model, None, args.encoder_layers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * args.steps), args.steps)

    def encode(rows):
        source = tokenizer(rows["text"], truncation=True, max_length=args.max_length, padding=True,
                           return_tensors="pt", return_token_type_ids=False)
        # targets: "headline [SEP]" (the decoder starts from [CLS] itself), padding ignored by the loss
        labels = tokenizer(rows["summary"], truncation=True, max_length=args.max_target_length + 1, padding=True,
                           return_tensors="pt")["input_ids"][:, 1:]
        return source, labels.masked_fill(labels == tokenizer.pad_token_id, -100)

    order = random.Random(args.seed)
    indices, step = list(range(len(train))), 0
    model.train()
    while step < args.steps:
        order.shuffle(indices)
        for start in range(0, len(indices) - args.batch_size + 1, args.batch_size):
            source, labels = encode(train[indices[start:start + args.batch_size]])
            model(**source, labels=labels).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step == args.steps:
                break
    model.eval()
    losses, predictions = [], []
    with torch.no_grad():
        for start in range(0, len(validation), 25):
            source, labels = encode(validation[start:start + 25])
            losses.append(model(**source, labels=labels).loss.item())
            generated = model.generate(**source, max_new_tokens=args.max_target_length, num_beams=1)
            predictions += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return {"validation_loss": sum(losses) / len(losses),
            "rouge": rouge_scores(predictions, list(validation["summary"])), "examples": predictions[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-model", default="minilm")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--encoder-layers", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--max-target-length", type=int, default=24)
    parser.add_argument("--validation-samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_task_data("bbc_headlines").dataset
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(args.base_model))
    validation = data["validation"].select(range(min(args.validation_samples, len(data["validation"]))))
    print(f"bbc_headlines, {args.steps} steps of batch {args.batch_size}, lr {args.learning_rate}, "
          f"{torch.get_num_threads()} threads")
    print("| cross-attention init | validation loss | ROUGE-1 | ROUGE-2 | ROUGE-L |")
    print("|---|---|---|---|---|")
    for init in CROSS_ATTENTION_INITS:
        result = train_and_score(init, args, tokenizer, data["train"], validation)
        rouge = result["rouge"]
        print(f"| {init} | {result['validation_loss']:.2f} | {rouge['rouge1']:.1f} | {rouge['rouge2']:.1f} | "
              f"{rouge['rougeL']:.1f} |  e.g. {result['examples'][0]!r}", flush=True)


if __name__ == "__main__":
    main()
