"""Measuring a seq2seq model with an adaptive encoder or decoder against its vanilla transformers counterpart:
generated text quality (ROUGE, and BLEU for the Depth-Adaptive Transformer), executed FLOPs of the encoder and
of the whole `generate` call, and the wall-clock of `generate`, all in one run.

For HashEE (adaptive encoder) the saved compute is also predicted analytically (the paper's Table 10) from the
tokens' exit layers, and compared with what `FlopCounterMode` measured, so the saving is shown to come from
exactly the skipped queries, attention rows, output projections and FFNs.

For the Depth-Adaptive Transformer (adaptive decoder, `evaluate_dat`) the reference is the same weights at full
depth (every generated token runs all N decoder blocks), and the vanilla `BartForConditionalGeneration` with the
same weights; the exits are those of the generated tokens (the paper's average exit, AE).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..data.text import check_texts
from ..progress import announce
from .classification import full_depth, vanilla_counterpart
from .measure import compare_wallclock, count_flops, exit_histogram, pad_batch
from .reports import DepthAdaptiveReport, EvaluationOptions, TokenExitSeq2SeqReport
from .text_metrics import bleu_score, rouge_scores


def seq2seq_vanilla(model: PreTrainedModel) -> PreTrainedModel:
    """`vanilla_counterpart` with the adaptive model's own generation settings. Built from the config alone, the
    vanilla model would derive them from it, and the Trainer saves `use_cache=False` there: the vanilla model
    would then generate without a key/value cache, and every speed-up against it would be inflated."""
    vanilla = vanilla_counterpart(model)
    vanilla.generation_config = copy.deepcopy(model.generation_config)
    return vanilla


def encode_sources(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int
) -> list[dict[str, torch.Tensor]]:
    """One unpadded (1, T) encoder input per text, truncated to `max_length` (no token type ids: BART has none)."""
    check_texts(texts, "evaluation data")
    return [
        dict(tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt",
                       return_token_type_ids=False))
        for text in texts
    ]


def batched(features: Sequence[dict[str, torch.Tensor]], batch_size: int, pad_token_id: int) -> list[dict]:
    return [pad_batch(features[i : i + batch_size], pad_token_id) for i in range(0, len(features), batch_size)]


def generate_all(model: PreTrainedModel, batches: Sequence[dict], **generate_kwargs) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [model.generate(**batch, **generate_kwargs) for batch in batches]


def decode_all(tokenizer: PreTrainedTokenizerBase, generated: Sequence[torch.Tensor]) -> list[str]:
    return [text.strip() for ids in generated for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]


def rouge_of(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
             references: Sequence[str], *, batch_size: int = 16, max_source_length: int = 256,
             max_new_tokens: int = 32, num_beams: int = 1) -> dict[str, float]:
    """ROUGE of a model's generations (no measurement): e.g. a baseline trained without exits."""
    batches = batched(encode_sources(tokenizer, texts, max_source_length), batch_size, tokenizer.pad_token_id or 0)
    generated = generate_all(model.eval(), batches, max_new_tokens=max_new_tokens, num_beams=num_beams)
    return rouge_scores(decode_all(tokenizer, generated), list(references))


def mean_generated_tokens(generated: Sequence[torch.Tensor], pad_token_id: int | None) -> float:
    """Mean number of tokens per generated sequence, the decoder start token and padding excluded."""
    lengths = [int((row[1:] != pad_token_id).sum()) for ids in generated for row in ids]
    return sum(lengths) / len(lengths)


def encoder_flops(model: PreTrainedModel, batches: Sequence[dict]) -> int:
    encoder = model.get_encoder()

    def run() -> None:
        for batch in batches:
            encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    with torch.inference_mode():
        return count_flops(run)


def generate_flops(model: PreTrainedModel, batches: Sequence[dict], **generate_kwargs) -> int:
    with torch.inference_mode():
        return count_flops(lambda: generate_all(model, batches, **generate_kwargs))


def generate_with_flops(model: PreTrainedModel, batches: Sequence[dict],
                        **generate_kwargs) -> tuple[list[torch.Tensor], int]:
    """The generated ids of every batch and the FLOPs executed to generate them, in one counted pass."""
    generated: list[torch.Tensor] = []
    with torch.inference_mode():
        flops = count_flops(lambda: generated.extend(generate_all(model, batches, **generate_kwargs)))
    return generated, flops


def generation_mean_exit(model: PreTrainedModel, batches: Sequence[dict],
                         generated: Sequence[torch.Tensor]) -> float | None:
    """The mean exit of an adaptive seq2seq model's generation: the average exit block of the generated tokens for
    a model whose decoder adapts (the Depth-Adaptive Transformer, `generated_exits`), the mean encoder exit layer
    of the source tokens for one with token exits in its encoder (HashEE-BART, `token_exit_layers`); None for a
    model that reports neither (vanilla BART) or runs with its adaptivity off."""
    if not getattr(model.config, "adaptive", False):
        return None
    if hasattr(model, "generated_exit_layers"):
        exits = generated_exits(model, batches, generated)
        return float(exits.float().mean()) if exits.numel() else None
    with torch.inference_mode():
        probe = model.get_encoder()(input_ids=batches[0]["input_ids"][:1],
                                    attention_mask=batches[0]["attention_mask"][:1])
    if getattr(probe, "token_exit_layers", None) is None:
        return None
    return float(torch.cat(token_exit_layers(model, batches)).float().mean())


def token_exit_layers(model: PreTrainedModel, batches: Sequence[dict]) -> list[torch.Tensor]:
    """Each real (non-padding) token's encoder exit layer, one 1-D tensor per example."""
    rows = []
    with torch.inference_mode():
        for batch in batches:
            out = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            for exits, mask in zip(out.token_exit_layers, batch["attention_mask"].bool()):
                rows.append(exits[mask])
    return rows


def table10_saved_flops(exit_layers: torch.Tensor, num_layers: int, hidden_size: int, ffn_size: int) -> int:
    """FLOPs a single unpadded sequence saves by token exits, from the paper's Table 10 (2 FLOPs per MAC).

    At layer l (1-based) the m tokens with exit layer >= l run and n - m are skipped: the query projection
    ((n - m) d^2 MACs), their attention rows (scores and weighted values, 2 n (n - m) d; the paper's extra
    n (n - m) h term is the softmax, which FlopCounterMode does not count), the output projection ((n - m) d^2)
    and the FFN (2 (n - m) d d_ff). Layer norms are not counted by FlopCounterMode either, so they are left out.
    """
    n = int(exit_layers.numel())
    saved_macs = 0
    for layer in range(1, num_layers + 1):
        skipped = n - int((exit_layers >= layer).sum())
        saved_macs += skipped * (2 * hidden_size * hidden_size + 2 * n * hidden_size + 2 * hidden_size * ffn_size)
    return 2 * saved_macs


def check_table10(model: PreTrainedModel, vanilla: PreTrainedModel, features: Sequence[dict], *,
                  num_samples: int = 16) -> dict[str, Any]:
    """Measured encoder FLOPs saved (vanilla minus HashEE, one unpadded example at a time) against Table 10."""
    config = model.config
    measured = predicted = 0
    for feature in features[:num_samples]:
        batch = [feature]
        measured += encoder_flops(vanilla, batch) - encoder_flops(model, batch)
        exits = token_exit_layers(model, batch)[0]
        predicted += table10_saved_flops(exits, config.encoder_layers, config.d_model, config.encoder_ffn_dim)
    return {"num_samples": min(num_samples, len(features)), "measured_saved_flops": measured,
            "table10_saved_flops": predicted, "measured_over_table10": measured / predicted if predicted else None}


def prepare_generation(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                       references: Sequence[str], max_source_length: int, options: EvaluationOptions):
    """What every generation measurement starts from: the vanilla model with the same weights, one encoding per
    source, the padded batches and the `generate` arguments."""
    if len(texts) != len(references):
        raise ValueError(f"{len(texts)} texts but {len(references)} references.")
    model.eval()
    features = encode_sources(tokenizer, texts, max_source_length)
    batches = batched(features, options.batch_size, tokenizer.pad_token_id or 0)
    return (seq2seq_vanilla(model), features, batches,
            dict(max_new_tokens=options.max_new_tokens, num_beams=options.num_beams))


def generation_header(texts: Sequence[str], max_source_length: int, options: EvaluationOptions) -> dict[str, Any]:
    """What every generation report starts with: the split's size and how it was generated."""
    return {"num_samples": len(texts), "batch_size": options.batch_size, "num_beams": options.num_beams,
            "max_source_length": max_source_length, "max_new_tokens": options.max_new_tokens}


def evaluate_seq2seq(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                     references: Sequence[str], *, max_source_length: int = 256,
                     options: EvaluationOptions = EvaluationOptions()) -> TokenExitSeq2SeqReport:
    """What `adaptive-zoo evaluate` reports for a seq2seq model with token early exit in its encoder (HashEE);
    a model whose decoder adapts its depth (the Depth-Adaptive Transformer) is measured by `evaluate_dat`."""
    vanilla, features, batches, generate_kwargs = prepare_generation(model, tokenizer, texts, references,
                                                                     max_source_length, options)
    max_new_tokens, num_beams, repeats = options.max_new_tokens, options.num_beams, options.repeats

    announce(f"measuring on {len(texts):,} texts: generation (up to {max_new_tokens} tokens, {num_beams} beams) of the "
             "adaptive model, the same weights without exits and vanilla BART, then executed FLOPs of each")
    adaptive_ids = generate_all(model, batches, **generate_kwargs)
    adaptive_text = decode_all(tokenizer, adaptive_ids)
    with full_depth(model):
        full_text = decode_all(tokenizer, generate_all(model, batches, **generate_kwargs))
    vanilla_ids = generate_all(vanilla, batches, **generate_kwargs)
    vanilla_text = decode_all(tokenizer, vanilla_ids)

    exits = token_exit_layers(model, batches)
    all_exits = torch.cat(exits)
    num_layers = model.config.encoder_layers
    report: dict[str, Any] = {
        **generation_header(texts, max_source_length, options),
        "rouge": rouge_scores(adaptive_text, list(references)),
        "baseline_rouge": rouge_scores(full_text, list(references)),
        "vanilla_rouge": rouge_scores(vanilla_text, list(references)),
        "identical_to_vanilla_at_full_depth": full_text == vanilla_text,
        "agreement_with_full_depth": agreement_with_full_depth(adaptive_text, full_text),
        # generate's FLOPs also scale with how many tokens each model generates, so both lengths are reported
        "mean_generated_tokens": mean_generated_tokens(adaptive_ids, tokenizer.pad_token_id),
        "vanilla_mean_generated_tokens": mean_generated_tokens(vanilla_ids, tokenizer.pad_token_id),
        "mean_exit_layer_per_token": float(all_exits.float().mean()),
        "exit_histogram": exit_histogram(all_exits, num_layers),
        "num_encoder_layers": num_layers,
        "encoder_flops": encoder_flops(model, batches),
        "vanilla_encoder_flops": encoder_flops(vanilla, batches),
        "generate_flops": generate_flops(model, batches, **generate_kwargs),
        "vanilla_generate_flops": generate_flops(vanilla, batches, **generate_kwargs),
        "table10_check": check_table10(model, vanilla, features),
        "examples": [{"prediction": p, "reference": r} for p, r in list(zip(adaptive_text, references))[:5]],
    }
    report["encoder_flops_speedup"] = report["vanilla_encoder_flops"] / report["encoder_flops"]
    report["generate_flops_speedup"] = report["vanilla_generate_flops"] / report["generate_flops"]
    # The same weights without exits may write longer or shorter outputs, which moves generate's cost by itself.
    # Forcing exactly max_new_tokens for both isolates what the encoder exits save end to end.
    equal_length = dict(generate_kwargs, min_new_tokens=max_new_tokens)
    report["equal_length_generate_flops_speedup"] = (generate_flops(vanilla, batches, **equal_length)
                                                     / generate_flops(model, batches, **equal_length))
    if options.measure_wallclock:
        announce(f"timing generate against vanilla BART on {len(texts):,} texts: {repeats} interleaved repeats, "
                 "as generated and at equal length")
        timing = compare_wallclock(
            {"vanilla": lambda: generate_all(vanilla, batches, **generate_kwargs),
             "adaptive": lambda: generate_all(model, batches, **generate_kwargs)},
            repeats=repeats, baseline="vanilla",
        )
        report["generate_wallclock_speedup"] = timing.speedup["adaptive"]
        equal_timing = compare_wallclock(
            {"vanilla": lambda: generate_all(vanilla, batches, **equal_length),
             "adaptive": lambda: generate_all(model, batches, **equal_length)},
            repeats=repeats, baseline="vanilla",
        )
        report["equal_length_generate_wallclock_speedup"] = equal_timing.speedup["adaptive"]
        report["wallclock_repeats"] = repeats
    return TokenExitSeq2SeqReport(**report)


def agreement_with_full_depth(adaptive_text: Sequence[str], full_text: Sequence[str]) -> dict[str, float]:
    """How much the exits change the output, whatever the model's quality: the fraction of inputs whose adaptive
    output equals the full-depth one, and ROUGE of the adaptive outputs with the full-depth outputs as references."""
    same = sum(a == f for a, f in zip(adaptive_text, full_text))
    return {"same_output_fraction": same / max(len(full_text), 1),
            "rouge_against_full_depth": rouge_scores(list(adaptive_text), list(full_text))}


# -- Depth-Adaptive Transformer: the decoder adapts ------------------------------------------------------------------


def generated_exits(model: PreTrainedModel, batches: Sequence[dict], generated: Sequence[torch.Tensor]) -> torch.Tensor:
    """The exit block of every generated token (up to and including each sequence's EOS), flattened: the
    teacher-forced replay of `generated_exit_layers`, which takes the decisions the incremental decoding took."""
    exits = []
    for batch, ids in zip(batches, generated):
        layers = model.generated_exit_layers(batch["input_ids"], ids, batch["attention_mask"])
        exits.append(layers[layers > 0])
    return torch.cat(exits) if exits else torch.zeros(0, dtype=torch.long)


def evaluate_dat(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                 references: Sequence[str], *, max_source_length: int = 256,
                 options: EvaluationOptions = EvaluationOptions()) -> DepthAdaptiveReport:
    """What `adaptive-zoo evaluate` reports for a Depth-Adaptive Transformer, all measured in one run on the same
    batches: ROUGE and BLEU of the adaptive model, of the same weights at full depth (`full_depth`: every token
    runs all N blocks) and of the vanilla `BartForConditionalGeneration` with the same weights; the average exit
    (AE) of the generated tokens, as blocks and as a fraction of N, with its histogram; executed FLOPs of
    `generate` (and of its decoder part, the encoder's FLOPs subtracted) for the three; and the `generate`
    wall-clock speed-ups (interleaved, paired medians) against full depth and against vanilla BART."""
    vanilla, features, batches, generate_kwargs = prepare_generation(model, tokenizer, texts, references,
                                                                     max_source_length, options)
    max_new_tokens, num_beams, repeats = options.max_new_tokens, options.num_beams, options.repeats
    references = list(references)

    def generate_full_depth():
        with full_depth(model):
            return generate_all(model, batches, **generate_kwargs)

    announce(f"measuring on {len(texts):,} texts: generation (up to {max_new_tokens} tokens, {num_beams} beams) at "
             "adaptive depth, at full depth and by vanilla BART, then executed FLOPs of each")
    adaptive_ids = generate_all(model, batches, **generate_kwargs)
    full_ids = generate_full_depth()
    vanilla_ids = generate_all(vanilla, batches, **generate_kwargs)
    adaptive_text, full_text, vanilla_text = (decode_all(tokenizer, ids) for ids in (adaptive_ids, full_ids, vanilla_ids))

    exits = generated_exits(model, batches, adaptive_ids)
    num_exits = model.config.decoder_layers
    average_exit = float(exits.float().mean()) if exits.numel() else float("nan")
    encoder = encoder_flops(model, batches)
    flops = {"adaptive": generate_flops(model, batches, **generate_kwargs),
             "vanilla": generate_flops(vanilla, batches, **generate_kwargs)}
    with full_depth(model):
        flops["full_depth"] = generate_flops(model, batches, **generate_kwargs)
    pad_id = tokenizer.pad_token_id
    report: dict[str, Any] = {
        **generation_header(texts, max_source_length, options),
        "exit_prediction": model.config.exit_prediction,
        "confidence_thresholds": (model.config.confidence_thresholds
                                  if model.config.exit_prediction == "confidence" else None),
        "rouge": rouge_scores(adaptive_text, references),
        "baseline_rouge": rouge_scores(full_text, references),
        "vanilla_rouge": rouge_scores(vanilla_text, references),
        "bleu": bleu_score(adaptive_text, references),
        "baseline_bleu": bleu_score(full_text, references),
        "vanilla_bleu": bleu_score(vanilla_text, references),
        "identical_to_vanilla_at_full_depth": full_text == vanilla_text,
        "agreement_with_full_depth": agreement_with_full_depth(adaptive_text, full_text),
        "num_decoder_layers": num_exits,
        "num_encoder_layers": model.config.encoder_layers,
        "average_exit": average_exit,
        "average_exit_fraction": average_exit / num_exits,
        "exit_histogram": exit_histogram(exits, num_exits),
        "num_generated_tokens": int(exits.numel()),
        # generate's cost also scales with how many tokens are generated, so every length is reported
        "mean_generated_tokens": mean_generated_tokens(adaptive_ids, pad_id),
        "full_depth_mean_generated_tokens": mean_generated_tokens(full_ids, pad_id),
        "vanilla_mean_generated_tokens": mean_generated_tokens(vanilla_ids, pad_id),
        "encoder_flops": encoder,
        "generate_flops": flops["adaptive"],
        "full_depth_generate_flops": flops["full_depth"],
        "vanilla_generate_flops": flops["vanilla"],
        # the encoder runs once per generate call and is the same for all three: what the decoder costs
        "decoder_generate_flops": flops["adaptive"] - encoder,
        "full_depth_decoder_generate_flops": flops["full_depth"] - encoder,
        "generate_flops_speedup": flops["full_depth"] / flops["adaptive"],
        "generate_flops_speedup_vs_vanilla": flops["vanilla"] / flops["adaptive"],
        "decoder_flops_speedup": (flops["full_depth"] - encoder) / max(flops["adaptive"] - encoder, 1),
        "examples": [{"prediction": p, "full_depth": f, "reference": r}
                     for p, f, r in list(zip(adaptive_text, full_text, references))[:5]],
    }
    if options.measure_wallclock:
        announce(f"timing generate on {len(texts):,} texts: adaptive, full depth and vanilla BART, {repeats} "
                 "interleaved repeats")
        timing = compare_wallclock(
            {"full_depth": generate_full_depth,
             "vanilla": lambda: generate_all(vanilla, batches, **generate_kwargs),
             "adaptive": lambda: generate_all(model, batches, **generate_kwargs)},
            repeats=repeats, baseline="full_depth",
        )
        samples = timing.samples
        report["generate_wallclock_speedup"] = timing.speedup["adaptive"]
        report["vanilla_generate_wallclock_speedup"] = timing.speedup["vanilla"]  # vanilla BART vs full depth
        report["generate_wallclock_speedup_vs_vanilla"] = statistics.median(
            v / a for v, a in zip(samples["vanilla"], samples["adaptive"]))
        report["generate_seconds"] = timing.median_s
        report["wallclock_repeats"] = repeats
    return DepthAdaptiveReport(**report)
