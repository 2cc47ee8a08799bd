# Copyright 2025 The adaptive-zoo authors.
# Licensed under the Apache License, Version 2.0.
"""Which tokens an AdapLeR model kept, layer by layer, for one text: the paper's Figure 4 rationales.

AdapLeR removes tokens before each layer, so the tokens that survive to the last layers are the ones the
Contribution Predictors found important: a rationale for the prediction that costs nothing extra to compute.
`explain_text` runs the model once and records, per layer, which original WordPiece positions entered it;
`render_html` and `render_png` draw that as one row per layer, so a reader sees the sentence thin out from
layer 1 to layer L at a glance.

Each token of a row is in one of three states: kept (entered the layer), dropped just before this layer
(entered the previous layer but not this one, so the eye finds where each removal happened) or dropped
earlier. For layer 1, "just dropped" means removed from the input by CP_0.

The PNG is drawn on an explicit Agg canvas instead of `pyplot`, like `plots.py`, so that importing this
module neither needs a display nor changes matplotlib's global backend for the caller.
"""

from __future__ import annotations

import html
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.text import check_token_content

__all__ = ["TokenRationale", "explain_text", "explain_to_files", "render_html", "render_png"]

logger = logging.getLogger(__name__)

KEPT, DROPPED_HERE, DROPPED_EARLIER = 2, 1, 0
# Same palette in both renderings: kept is a saturated blue, "just dropped" a pale red, older removals grey.
COLOURS = {KEPT: "#2b6cb0", DROPPED_HERE: "#f4b6b6", DROPPED_EARLIER: "#e6e6e6"}
STATE_NAMES = {
    KEPT: "kept (enters the layer)",
    DROPPED_HERE: "dropped just before this layer",
    DROPPED_EARLIER: "dropped at an earlier layer",
}
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")
# Beyond about this many tokens the PNG's x labels would be unreadable at any sane width, so a longer text
# shows its first PNG_MAX_TOKENS (the HTML shows them all). The slack spares cutting a text of 82 tokens at 80.
PNG_MAX_TOKENS = 80
PNG_TOKEN_SLACK = 16
PNG_MAX_LABEL_CHARS = 12


@dataclass
class TokenRationale:
    """What one forward pass of an AdapLeR model did to one text.

    Args:
        tokens: the WordPiece tokens of the (possibly truncated) input, [CLS] and [SEP] included.
        kept: `num_layers` rows of `len(tokens)` flags; `kept[l][t]` is True iff token `t` entered layer `l + 1`.
        kept_counts: number of tokens entering each layer (the row sums of `kept`).
        predicted_label: the model's label name for the argmax class.
        probabilities: softmax probability of every label, in the model's label order.
        num_layers: number of encoder layers, `len(kept)`.
        truncated: whether the text was cut to `max_length` tokens before the model saw it.
    """

    tokens: list[str]
    kept: list[list[bool]]
    kept_counts: list[int]
    predicted_label: str
    probabilities: dict[str, float]
    num_layers: int
    truncated: bool = False

    def __post_init__(self):
        # Hand-built rationales (tests, other models) must have the shapes the renderers index with.
        if len(self.kept) != self.num_layers or len(self.kept_counts) != self.num_layers:
            raise ValueError(
                f"`kept` and `kept_counts` need one entry per layer ({self.num_layers}); "
                f"got {len(self.kept)} and {len(self.kept_counts)}."
            )
        if any(len(row) != len(self.tokens) for row in self.kept):
            raise ValueError(f"Every row of `kept` needs one flag per token ({len(self.tokens)}).")

    def states(self) -> list[list[int]]:
        """Per layer and token: `KEPT`, `DROPPED_HERE` (entered the previous layer, or the input for layer 1,
        but not this one) or `DROPPED_EARLIER`."""
        previous = [True] * len(self.tokens)
        rows = []
        for row in self.kept:
            rows.append([KEPT if k else DROPPED_HERE if p else DROPPED_EARLIER for k, p in zip(row, previous)])
            previous = row
        return rows


# -- running the model ----------------------------------------------------------------------------------------


def _check_supports_kept_masks(model) -> None:
    # Checked before the forward: DeeBERT, say, passes unknown kwargs on to its layers, which would fail obscurely.
    if "output_kept_masks" not in inspect.signature(model.forward).parameters:
        raise ValueError(
            f"{type(model).__name__} does not report which tokens each layer kept (no `output_kept_masks` "
            "argument): token rationales need a token-removing model such as AdapLeR."
        )


def _default_max_length(model, tokenizer) -> int:
    return min(int(tokenizer.model_max_length), int(model.config.max_position_embeddings))


def _label_name(config, index: int) -> str:
    id2label = getattr(config, "id2label", None) or {}
    return str(id2label.get(index, id2label.get(str(index), f"LABEL_{index}")))


def explain_text(model, tokenizer, text: str, *, max_length: int | None = None) -> TokenRationale:
    """Run `model` in eval mode on `text` and record which tokens entered each layer.

    Args:
        model: a classifier whose forward takes `output_kept_masks` and returns `kept_masks` (AdapLeR). Its
            train/eval mode is restored afterwards.
        tokenizer: the model's tokenizer.
        text: one non-empty text.
        max_length: truncation length in tokens; defaults to the tokenizer's `model_max_length`, capped by
            the model's `max_position_embeddings` (the most the model accepts).

    Returns:
        A [`TokenRationale`].
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("`text` must be a non-empty string.")
    _check_supports_kept_masks(model)
    if getattr(model.config, "inference_mode", "remove") != "remove":
        logger.warning(
            "The model's inference_mode is %r, not 'remove': no token is removed, every layer shows all tokens.",
            model.config.inference_mode,
        )
    max_length = max_length or _default_max_length(model, tokenizer)
    # One token more than allowed tells whether truncation cut anything, without an over-length warning.
    truncated = len(tokenizer(text, truncation=True, max_length=max_length + 1)["input_ids"]) > max_length
    inputs = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
    check_token_content([text], inputs["input_ids"], tokenizer, "explain")
    device = next(model.parameters()).device
    inputs = {name: tensor.to(device) for name, tensor in inputs.items()}

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            outputs = model(**inputs, output_kept_masks=True)
    finally:
        model.train(was_training)
    if getattr(outputs, "kept_masks", None) is None:
        raise ValueError(f"{type(model).__name__} returned no `kept_masks`; token rationales need AdapLeR.")

    kept = [mask[0].tolist() for mask in outputs.kept_masks]  # L x T
    probabilities = outputs.logits[0].float().softmax(-1).tolist()
    predicted = int(outputs.logits[0].argmax())
    return TokenRationale(
        tokens=tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist()),
        kept=kept,
        kept_counts=[sum(row) for row in kept],
        predicted_label=_label_name(model.config, predicted),
        probabilities={_label_name(model.config, i): p for i, p in enumerate(probabilities)},
        num_layers=len(kept),
        truncated=truncated,
    )


# -- shared text ----------------------------------------------------------------------------------------------


def _title(rationale: TokenRationale) -> str:
    confidence = rationale.probabilities.get(rationale.predicted_label)
    suffix = f" (p = {confidence:.2f})" if confidence is not None else ""
    return f"Predicted: {rationale.predicted_label}{suffix}"


def _probability_summary(rationale: TokenRationale, top: int = 5) -> str:
    """The most probable labels first: with many classes the tail says little."""
    ranked = sorted(rationale.probabilities.items(), key=lambda item: -item[1])
    text = ", ".join(f"{label} {p:.2f}" for label, p in ranked[:top])
    return text + (f", ... ({len(ranked) - top} more)" if len(ranked) > top else "")


def _is_continuation(token: str) -> bool:
    return token.startswith("##") and len(token) > 2


# -- HTML -----------------------------------------------------------------------------------------------------

_CSS = f"""
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #1a202c;
       max-width: 1100px; }}
h1 {{ font-size: 20px; margin: 0 0 4px 0; }}
.summary {{ color: #4a5568; font-size: 14px; margin: 0 0 12px 0; }}
.legend {{ font-size: 13px; margin: 0 0 16px 0; }}
.legend .tok {{ margin-right: 6px; }}
.legend span.item {{ margin-right: 18px; }}
table {{ border-collapse: collapse; width: 100%; }}
td {{ vertical-align: top; padding: 6px 8px; border-top: 1px solid #edf2f7; }}
td.layer {{ white-space: nowrap; font-weight: 600; font-size: 13px; width: 1%; }}
td.count {{ white-space: nowrap; font-size: 12px; color: #4a5568; width: 1%; text-align: right; }}
td.tokens {{ line-height: 2.0; }}
.word {{ display: inline-block; white-space: nowrap; margin: 0 2px; }}
.tok {{ display: inline-block; padding: 0 5px; border-radius: 4px; font-size: 15px; line-height: 1.6; }}
.tok.cont {{ border-top-left-radius: 0; border-bottom-left-radius: 0; padding-left: 1px; }}
.tok.joined {{ border-top-right-radius: 0; border-bottom-right-radius: 0; padding-right: 1px; }}
.tok.kept {{ background: {COLOURS[KEPT]}; color: #fff; }}
.tok.dropped-here {{ background: {COLOURS[DROPPED_HERE]}; color: #742a2a; text-decoration: line-through; }}
.tok.dropped {{ background: {COLOURS[DROPPED_EARLIER]}; color: #a0aec0; text-decoration: line-through; }}
.tok.special {{ font-size: 11px; font-weight: 700; }}
"""

_STATE_CLASSES = {KEPT: "kept", DROPPED_HERE: "dropped-here", DROPPED_EARLIER: "dropped"}


def _chip(token: str, state: int, joined_to_next: bool) -> str:
    """One token as a coloured span; a "##" piece loses its marker and sticks to the previous piece, so
    words read as words while each piece keeps its own colour."""
    classes = ["tok", _STATE_CLASSES[state]]
    shown = token
    if _is_continuation(token):
        classes.append("cont")
        shown = token[2:]
    if joined_to_next:
        classes.append("joined")
    if token in SPECIAL_TOKENS:
        classes.append("special")
    return f'<span class="{" ".join(classes)}" title="{html.escape(token)}">{html.escape(shown)}</span>'


def _words(tokens: list[str]) -> list[list[int]]:
    """Token indices grouped into words: a "##" piece joins the group of the piece before it."""
    groups: list[list[int]] = []
    for index, token in enumerate(tokens):
        if groups and _is_continuation(token):
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def _html_row(layer: int, tokens: list[str], states: list[int], count: int) -> str:
    # Each word is one unbreakable span with no whitespace inside, so its pieces render (and wrap) as one word.
    words = [
        '<span class="word">'
        + "".join(_chip(tokens[i], states[i], i != group[-1]) for i in group)
        + "</span>"
        for group in _words(tokens)
    ]
    share = f" ({100 * count / len(tokens):.0f}%)" if tokens else ""
    return (
        f'<tr class="layer-row" id="layer-{layer}"><td class="layer">Layer {layer}</td>'
        f'<td class="tokens">{chr(10).join(words)}</td>'
        f'<td class="count">{count} / {len(tokens)} tokens{share}</td></tr>'
    )


def _html_legend() -> str:
    items = [
        f'<span class="item"><span class="tok {_STATE_CLASSES[state]}">token</span>{html.escape(name)}</span>'
        for state, name in STATE_NAMES.items()
    ]
    return f'<p class="legend">{"".join(items)}</p>'


def _output_file(path: str | Path) -> Path:
    """`path` as a Path, its parent folders created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def render_html(rationale: TokenRationale, path: str | Path) -> Path:
    """Write `rationale` (from [`explain_text`], or built by hand) to `path` as a self-contained HTML page (inline
    CSS, no script, no external asset), one row per layer; returns the path."""
    path = _output_file(path)
    states = rationale.states()
    rows = [
        _html_row(layer + 1, rationale.tokens, states[layer], rationale.kept_counts[layer])
        for layer in range(rationale.num_layers)
    ]
    final = rationale.kept_counts[-1] if rationale.kept_counts else len(rationale.tokens)
    summary = (
        f"Probabilities: {_probability_summary(rationale)}. {len(rationale.tokens)} tokens in, {final} reach "
        f"layer {rationale.num_layers}."
        + (" The text was truncated to the model's maximum length." if rationale.truncated else "")
    )
    title = html.escape(_title(rationale))
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n"
        f'<p class="summary">{html.escape(summary)}</p>\n'
        f"{_html_legend()}\n"
        "<table>\n" + "\n".join(rows) + "\n</table>\n</body>\n</html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path


# -- PNG ------------------------------------------------------------------------------------------------------


def _png_label(token: str) -> str:
    return token if len(token) <= PNG_MAX_LABEL_CHARS else token[: PNG_MAX_LABEL_CHARS - 1] + "…"


def render_png(rationale: TokenRationale, path: str | Path) -> Path:
    """Draw the rationale as a heat strip (layers top to bottom, tokens left to right) and save it as a PNG.

    Texts longer than `PNG_MAX_TOKENS + PNG_TOKEN_SLACK` tokens show their first `PNG_MAX_TOKENS` only (said in
    the title): beyond that the token labels stop being legible. The per-layer counts on the right still cover
    the whole text.

    `rationale` comes from [`explain_text`] (or is built by hand); returns the path of the written PNG.
    """
    # lazy: matplotlib costs every CLI start ~0.25 s, and only `explain`'s PNG needs it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    path = _output_file(path)
    shown = len(rationale.tokens)
    if shown > PNG_MAX_TOKENS + PNG_TOKEN_SLACK:
        shown = PNG_MAX_TOKENS
    states = [row[:shown] for row in rationale.states()]
    num_layers = rationale.num_layers

    figure = Figure(figsize=(max(6.0, 1.8 + 0.2 * shown), 2.4 + 0.3 * num_layers), dpi=130)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colormap = ListedColormap([COLOURS[DROPPED_EARLIER], COLOURS[DROPPED_HERE], COLOURS[KEPT]])
    axes.imshow(states, cmap=colormap, vmin=0, vmax=2, aspect="auto", interpolation="nearest")
    # White grid lines between cells, so single tokens stay distinguishable in long runs of one colour.
    axes.set_xticks([x - 0.5 for x in range(1, shown)], minor=True)
    axes.set_yticks([y - 0.5 for y in range(1, num_layers)], minor=True)
    axes.grid(which="minor", color="white", linewidth=1.0)
    axes.tick_params(which="minor", length=0)

    axes.set_xticks(range(shown))
    axes.set_xticklabels([_png_label(t) for t in rationale.tokens[:shown]], rotation=90, fontsize=8)
    axes.set_yticks(range(num_layers))
    axes.set_yticklabels([f"Layer {layer + 1}" for layer in range(num_layers)], fontsize=8)
    # Counts cover the whole text, also when only its start is drawn.
    right = shown - 0.5 + 0.3
    axes.text(right, -0.5, "kept", va="bottom", ha="left", fontsize=8, color="#4a5568")
    for layer, count in enumerate(rationale.kept_counts):
        axes.text(right, layer, f"{count} / {len(rationale.tokens)}", va="center", ha="left", fontsize=8,
                  color="#4a5568")
    for side in axes.spines.values():
        side.set_visible(False)

    title = _title(rationale)
    if shown < len(rationale.tokens):
        title += f" — first {shown} of {len(rationale.tokens)} tokens shown"
    elif rationale.truncated:
        title += " — text truncated to the model's maximum length"
    axes.set_title(f"{title}\n{_probability_summary(rationale)}", fontsize=10, loc="left")
    figure.legend(
        handles=[Patch(color=COLOURS[state], label=name) for state, name in STATE_NAMES.items()],
        loc="lower center", ncol=3, fontsize=8, frameon=False,
    )
    figure.tight_layout(rect=(0, 0.06, 0.97, 1))
    figure.savefig(path, format="png")
    return path


# -- both -----------------------------------------------------------------------------------------------------


def explain_to_files(
    model, tokenizer, text: str, output_dir: str | Path, *, stem: str = "explanation", max_length: int | None = None
) -> dict[str, Path]:
    """Explain `text` and write `{stem}.html` and `{stem}.png` into `output_dir`.

    Returns:
        `{"html": path, "png": path}`.
    """
    rationale = explain_text(model, tokenizer, text, max_length=max_length)
    output_dir = Path(output_dir)
    return {
        "html": render_html(rationale, output_dir / f"{stem}.html"),
        "png": render_png(rationale, output_dir / f"{stem}.png"),
    }
