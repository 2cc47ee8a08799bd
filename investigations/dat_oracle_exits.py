"""How low can a trained Depth-Adaptive Transformer's average exit go without changing its output?

The model generates at full depth (greedy). Its own output is then replayed teacher-forced with every exit's
logits (`output_exit_logits=True`), and each generated token gets two oracle exits:

* first agreeing block: the lowest block whose argmax is the full-depth token;
* stable block: the lowest block from which every higher block's argmax is the full-depth token too.

No exit predictor can choose lower exits than the first agreeing block and still write the full-depth tokens, so
its mean is a lower bound on the average exit (AE) at which the output can stay the full-depth one. The bound is
optimistic: with copied states, a token that exits early changes what later tokens attend to, which the replay
(every block computed) does not include. ROUGE can stay near full depth with other tokens, so the bound says
what it costs to keep full-depth quality by keeping full-depth tokens, not that no cheaper output scores as well.

    python investigations/dat_oracle_exits.py runs/benchmark_dat3/dat-sequence-lambda0.3-bbc_headlines \
        --dataset bbc_headlines --split test --max-length 64 --output benchmarks/dat_oracle_exits_bbc_headlines.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data
from adaptive_zoo.data.registry import get_dataset_spec
from adaptive_zoo.evaluation.classification import full_depth
from adaptive_zoo.evaluation.seq2seq import batched, encode_sources, generate_all
from adaptive_zoo.models.dat.modeling_dat import generated_token_mask


def oracle_exit_blocks(exit_predictions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From every block's argmax at every position, (B, S, N), the 1-based first block that agrees with block N
    and the first block from which all blocks agree with block N, each (B, S)."""
    num_blocks = exit_predictions.shape[-1]
    agrees = exit_predictions == exit_predictions[..., -1:]  # (B, S, N); block N always agrees
    blocks = torch.arange(1, num_blocks + 1, device=exit_predictions.device)  # (N,)
    first = torch.where(agrees, blocks, num_blocks).min(dim=-1).values  # (B, S)
    agrees_from_here_up = agrees.flip(-1).cumprod(dim=-1).flip(-1).bool()  # (B, S, N)
    stable = torch.where(agrees_from_here_up, blocks, num_blocks).min(dim=-1).values  # (B, S)
    return first, stable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="Folder of a trained DepthAdaptiveTransformer.")
    parser.add_argument("--dataset", default="bbc_headlines")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-length", type=int, default=64, help="Source tokens (the benchmark's setting).")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", default=None, help="Also write the result as JSON here.")
    args = parser.parse_args()

    model = AutoModelForSeq2SeqLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    spec = get_dataset_spec(args.dataset)
    split = load_task_data(args.dataset).dataset[args.split]
    batches = batched(encode_sources(tokenizer, list(split[spec.text_column]), args.max_length), args.batch_size,
                      tokenizer.pad_token_id or 0)
    with full_depth(model):
        generated = generate_all(model, batches, max_new_tokens=args.max_new_tokens)

    num_blocks = model.config.decoder_layers
    first_blocks, stable_blocks, replay_agreement = [], [], []
    with torch.inference_mode():
        for batch, sequences in zip(batches, generated):
            outputs = model(**batch, decoder_input_ids=sequences[:, :-1], output_exit_logits=True, use_cache=False)
            exit_predictions = outputs.exit_logits.argmax(dim=-1)  # (B, S, N)
            present = generated_token_mask(sequences[:, 1:], model.generation_config.eos_token_id)  # (B, S)
            first, stable = oracle_exit_blocks(exit_predictions)
            first_blocks.append(first[present])
            stable_blocks.append(stable[present])
            replay_agreement.append(exit_predictions[..., -1][present] == sequences[:, 1:][present])
    first, stable = torch.cat(first_blocks), torch.cat(stable_blocks)
    result = {
        "model": args.model, "dataset": args.dataset, "split": args.split, "num_samples": len(split),
        "num_decoder_blocks": num_blocks, "num_generated_tokens": int(first.numel()),
        # the replay's block-N argmax is the generated token except where generate forced EOS at the length limit
        "replay_matches_generated_tokens": float(torch.cat(replay_agreement).float().mean()),
        "first_agreeing_block": {
            "average_exit": float(first.float().mean()),
            "average_exit_fraction": float(first.float().mean()) / num_blocks,
            "histogram": torch.bincount(first - 1, minlength=num_blocks).tolist(),
        },
        "stable_block": {
            "average_exit": float(stable.float().mean()),
            "average_exit_fraction": float(stable.float().mean()) / num_blocks,
            "histogram": torch.bincount(stable - 1, minlength=num_blocks).tolist(),
        },
    }
    for name in ("first_agreeing_block", "stable_block"):
        point = result[name]
        print(f"{name}: AE {point['average_exit']:.2f} / {num_blocks} ({100 * point['average_exit_fraction']:.0f}%), "
              f"tokens per block {point['histogram']}")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
