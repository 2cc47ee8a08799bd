"""What does the Depth-Adaptive Transformer's decoding loop itself cost? A quick wall-clock check.

Times `generate` with the plain full-depth decoder (`full_depth`: BART's own decoder layers) against the adaptive
loop with every token sent to a fixed exit n (`fixed_exit_thresholds`). At n = N the adaptive loop does the same
work as the plain decoder, so its ratio is the loop's overhead. Every call writes exactly `--new-tokens` tokens
(`min_new_tokens = max_new_tokens`), so only the decoder's per-token cost differs. Runs are interleaved and each
ratio is a ratio of medians. To compare two versions of the code, run the script at each commit in one session.

    OMP_NUM_THREADS=1 python investigations/time_dat_decoding_loop.py runs/benchmark_dat3/dat-sequence-lambda0.3-bbc_headlines
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

import adaptive_zoo  # noqa: F401  (registers the model classes)
from adaptive_zoo.data import load_task_data
from adaptive_zoo.data.registry import get_dataset_spec
from adaptive_zoo.evaluation.classification import full_depth
from adaptive_zoo.evaluation.operating_points import fixed_exit_thresholds
from adaptive_zoo.evaluation.seq2seq import batched, encode_sources, generate_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="Folder of a trained DepthAdaptiveTransformer.")
    parser.add_argument("--dataset", default="bbc_headlines")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-samples", type=int, default=96)
    parser.add_argument("--max-length", type=int, default=64, help="Source tokens.")
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--exits", type=int, nargs="+", default=None, help="Fixed exits to time (default: 1 .. N).")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = AutoModelForSeq2SeqLM.from_pretrained(args.model).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    spec = get_dataset_spec(args.dataset)
    texts = list(load_task_data(args.dataset).dataset[args.split][spec.text_column])[: args.num_samples]
    batches = batched(encode_sources(tokenizer, texts, args.max_length), args.batch_size, tokenizer.pad_token_id or 0)
    generate_kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    num_blocks = model.config.decoder_layers
    exits = args.exits or list(range(1, num_blocks + 1))

    def plain() -> None:
        with full_depth(model):
            generate_all(model, batches, **generate_kwargs)

    def at_exit(block: int):
        def run() -> None:
            saved = model.config.exit_prediction, model.config.confidence_thresholds
            model.config.exit_prediction = "confidence"
            model.config.confidence_thresholds = fixed_exit_thresholds(block, num_blocks)
            try:
                generate_all(model, batches, **generate_kwargs)
            finally:
                model.config.exit_prediction, model.config.confidence_thresholds = saved
        return run

    runs = {"plain": plain, **{f"exit {block}": at_exit(block) for block in exits}}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up
        run()
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    plain_time = statistics.median(times["plain"])
    print(f"{len(texts)} {args.split} samples, {args.new_tokens} tokens each, {torch.get_num_threads()} thread(s); "
          f"plain full-depth decoder {plain_time:.2f} s")
    for block in exits:
        ratio = plain_time / statistics.median(times[f"exit {block}"])
        print(f"adaptive loop, every token at exit {block}/{num_blocks}: {ratio:.2f}x of the plain decoder's speed")


if __name__ == "__main__":
    main()
