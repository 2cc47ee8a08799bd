"""Is the information an off-ramp needs in the [CLS] state, or only in the token states? For each layer of a
trained BERT-style classifier, fit a logistic-regression probe on the [CLS] state and on the mean of the token
states, and print its validation accuracy and how much each representation varies across inputs.

    python investigations/probe_offramp_pooling.py MODEL_DIR [--dataset bbc_news] [--train-samples 400]

Needs scikit-learn (`pip install scikit-learn`).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data


def layer_features(backbone, tokenizer, texts, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] and masked token-mean states of every layer: two (N, L, H) tensors."""
    cls_states, mean_states = [], []
    with torch.inference_mode():
        for start in range(0, len(texts), 32):
            batch = tokenizer(texts[start : start + 32], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            hidden_states = backbone(**batch, output_hidden_states=True).hidden_states[1:]  # L x (B, T, H)
            mask = batch["attention_mask"].unsqueeze(-1).float()  # (B, T, 1)
            cls_states.append(torch.stack([h[:, 0] for h in hidden_states], dim=1))
            mean_states.append(torch.stack([(h * mask).sum(1) / mask.sum(1) for h in hidden_states], dim=1))
    return torch.cat(cls_states), torch.cat(mean_states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("--dataset", default="bbc_news")
    parser.add_argument("--train-samples", type=int, default=400)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()

    backbone = AutoModel.from_pretrained(args.model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    data = load_task_data(args.dataset).dataset
    train, validation = data["train"].select(range(args.train_samples)), data["validation"]
    train_cls, train_mean = layer_features(backbone, tokenizer, train["text"], args.max_length)
    val_cls, val_mean = layer_features(backbone, tokenizer, validation["text"], args.max_length)
    y_train, y_val = np.array(train["label"]), np.array(validation["label"])

    print("| layer | [CLS] std across inputs | [CLS] probe accuracy | token-mean std | token-mean probe accuracy |")
    print("|---|---|---|---|---|")
    for layer in range(train_cls.shape[1]):
        scores = []
        for train_x, val_x in ((train_cls, val_cls), (train_mean, val_mean)):
            probe = LogisticRegression(max_iter=3000).fit(train_x[:, layer].numpy(), y_train)
            scores.append((val_x[:, layer].std(0).mean().item(), probe.score(val_x[:, layer].numpy(), y_val)))
        (cls_std, cls_acc), (mean_std, mean_acc) = scores
        print(f"| {layer + 1} | {cls_std:.3f} | {100 * cls_acc:.1f}% | {mean_std:.3f} | {100 * mean_acc:.1f}% |")


if __name__ == "__main__":
    main()
