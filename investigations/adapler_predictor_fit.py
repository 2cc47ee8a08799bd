"""How well an AdapLeR model's contribution predictors fit their targets: for training examples with stored
saliencies, the mean inclusive KL(target || CP) per layer (eq. 6, the loss they are trained on), next to the KL
of a uniform guess over the tokens, and the share of tokens each predictor scores below 1/n (what η = 1 removes).

Run without removal (every token reaches every layer), so each layer's predictor sees the states it was trained on.

    python investigations/adapler_predictor_fit.py --model-dir runs/adapler-bbc --saliency-dir runs/adapler-bbc-training/saliency
"""

from __future__ import annotations

import argparse
import math

import torch
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.models.adapler.modeling_adapler import amplify_cls, inclusive_kl
from adaptive_zoo.training.adapler import SALIENCY_COLUMN, check_saliency_alignment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, nargs="+", help="AdapLeR folders or phase-3 checkpoints.")
    parser.add_argument("--saliency-dir", required=True, help="The stored training set with saliencies (phase 2).")
    parser.add_argument("--num-examples", type=int, default=32, help="The last N training examples.")
    args = parser.parse_args()

    data = load_from_disk(args.saliency_dir)
    check_saliency_alignment(data)
    data = data.select(range(max(0, len(data) - args.num_examples), len(data)))
    for model_dir in args.model_dir:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        num_layers = model.config.num_hidden_layers
        print("| model | | " + " | ".join(f"layer {i + 1}" for i in range(num_layers)) + " |")
        print("|---|---|" + "---|" * num_layers)
        fitted, uniform, below = ([0.0] * num_layers for _ in range(3))
        with torch.no_grad():
            for row in data:
                input_ids = torch.tensor([row["input_ids"]])  # (1, T)
                saliency = torch.tensor([row[SALIENCY_COLUMN]], dtype=torch.float)  # (1, T)
                present = torch.ones_like(input_ids, dtype=torch.bool)  # (1, T)
                length = input_ids.shape[1]
                hidden_states = model.bert.embeddings(input_ids=input_ids)  # (1, T, H)
                layers = zip(model.bert.encoder.layer, model.contribution_predictors)
                for index, (layer, predictor) in enumerate(layers):
                    log_scores = predictor.log_scores(hidden_states, present)  # (1, T)
                    target = amplify_cls(saliency, model.theta[index].float())  # (1, T), eq. 7
                    fitted[index] += float(inclusive_kl(target, log_scores)) / len(data)
                    uniform_log_scores = torch.full_like(log_scores, -math.log(length))  # (1, T)
                    uniform[index] += float(inclusive_kl(target, uniform_log_scores)) / len(data)
                    below[index] += float((log_scores.exp()[0, 1:] * length < 1).float().mean()) / len(data)
                    hidden_states = layer(hidden_states)  # (1, T, H)
        print(f"| {model_dir} | KL(target ‖ CP) | " + " | ".join(f"{v:.3f}" for v in fitted) + " |")
        print("| | KL(target ‖ uniform) | " + " | ".join(f"{v:.3f}" for v in uniform) + " |")
        print("| | share below 1/n | " + " | ".join(f"{v:.3f}" for v in below) + " |")


if __name__ == "__main__":
    main()
