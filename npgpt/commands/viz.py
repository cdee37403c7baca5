"""``npgpt viz``: pictures of what happens inside the model for one piece of text.

Each view runs the model once on the text (``run_with_cache``), computes what it needs with
``npgpt.inspection`` and draws it with ``viz`` (PNG, SVG or PDF by the output's suffix; the
``html`` view writes one self-contained HTML file from ``model.attention_patterns``, which
records the patterns alone).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .generate import add_model_argument, load_model, read_prompt

EXAMPLES = r"""
views:
  attention    one head's attention pattern, tokens on both axes (--layer, --head)
  grid         every head of every layer as thumbnails
  logit-lens   each layer's top next-token guess at each position
  activations  MLP neuron activations of one layer (tokens x most active neurons)
  residual     residual-stream norm per layer and position
  entropy      mean attention entropy per head
  scores       previous-token / first-token / induction score per head (--score)
  flow         attention rollout into one token across layers (--position)
  attribution  direct logit attribution of every head and MLP to one token (--target)
  ablation     change in log p(target) when each head is zeroed (--target)
  next-token   the next-token distribution after the text (top --k)
  positions    the positional embedding matrix and its principal components (no text)
  html         the interactive attention view, one offline HTML file

examples:
  npgpt viz attention "The cat sat on the mat" --layer 5 --head 1 -o attn.png
  npgpt viz grid "When Mary and John went to the store, John gave a drink to" -o grid.png
  npgpt viz logit-lens "The Eiffel Tower is in the city of" -o lens.svg
  npgpt viz activations "def f(x): return x" --layer 3 -o mlp.png
  npgpt viz attribution "The Eiffel Tower is in the city of" --target " Paris" -o dla.png
  npgpt viz html "$(cat story.txt)" -o view.html
  npgpt viz positions -o wpe.png
"""

MIN_DPI, MAX_DPI = 10, 1200  # past 1200 a figure takes gigabytes to render

VIEWS = ["attention", "grid", "logit-lens", "activations", "residual", "entropy", "scores", "flow",
         "attribution", "ablation", "next-token", "positions", "html"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "viz", help="draw attention, logit lens, activations ... for a text (PNG/SVG/PDF/HTML)",
        description="Draw what happens inside the model for one text.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("view", choices=VIEWS, metavar="VIEW", help="what to draw: " + ", ".join(VIEWS))
    p.add_argument("text", nargs="?", default=None, help="the text to run ('-' reads stdin; not needed for positions)")
    add_model_argument(p)
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help="where to write: .png, .svg or .pdf (html: .html); default VIEW.png / attention.html")
    p.add_argument("--layer", "-l", type=int, default=0, help="layer (attention, activations; negative counts from the end)")
    p.add_argument("--head", type=int, default=0, help="head (attention)")
    p.add_argument("--position", type=int, default=-1, help="token position (flow, attribution, ablation; default the last)")
    p.add_argument("--target", default=None,
                   help="token to explain (attribution, ablation): an id or one-token text such as ' Paris'; default the top prediction")
    p.add_argument("--score", choices=["previous-token", "first-token", "induction"], default="previous-token",
                   help="which head score to draw (scores)")
    p.add_argument("--k", type=int, default=10, help="how many candidates (next-token; default 10)")
    p.add_argument("--gamma", type=float, default=1.0, help="colour scale exponent for attention; < 1 shows small weights")
    p.add_argument("--layers", default=None, metavar="L,L,...", help="html: embed only these layers (smaller file)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of PNG output (default 150)")
    p.set_defaults(func=run)


def _tokenize(model, text: str) -> np.ndarray:
    if model.tokenizer is None:
        raise InputError("this model has no tokenizer: put vocab.json and merges.txt in its folder")
    special = {model.tokenizer.eot_token} if getattr(model.tokenizer, "eot_token", None) else frozenset()
    ids = np.asarray(model.tokenizer.encode(text, allowed_special=special), dtype=np.int64)
    if ids.size == 0:
        raise InputError("the text is empty: give at least one character to run the model on")
    if ids.size > model.config.n_ctx:
        raise InputError(
            f"the text is {ids.size} tokens, longer than the model's context ({model.config.n_ctx}); shorten it"
        )
    return ids


def _check_layer_head(model, layer: int, head: int | None = None, flag: str = "--layer") -> int:
    c = model.config
    if not -c.n_layer <= layer < c.n_layer:
        raise InputError(f"{flag} {layer} does not exist: this model has layers 0..{c.n_layer - 1}")
    if head is not None and not 0 <= head < c.n_head:
        raise InputError(f"--head {head} does not exist: each layer has heads 0..{c.n_head - 1}")
    return layer % c.n_layer


def run(args: argparse.Namespace) -> int:
    import viz
    from .. import inspection

    view = args.view
    output = _check_arguments(args, viz)
    model = load_model(args.model, args.dtype)
    if view == "positions":
        title = f"positional embedding of {model.name or args.model}"
        return _save(viz, viz.positional_embedding_plot(inspection.positional_embedding(model), title=title), output, args)
    ids = _tokenize(model, read_prompt(args.text))
    if view == "html":
        layers = None
        if args.layers:
            try:
                numbers = [int(x) for x in args.layers.split(",") if x.strip()]
            except ValueError:
                raise InputError(f"--layers takes comma-separated layer numbers, e.g. 0,3,5, got {args.layers!r}") from None
            bad = [n for n in numbers if not 0 <= n < model.config.n_layer]
            if bad or not numbers:
                raise InputError(f"--layers {args.layers}: this model has layers 0..{model.config.n_layer - 1}; "
                                 f"{'layer ' + str(bad[0]) + ' does not exist' if bad else 'give at least one'}")
            layers = numbers
        patterns = model.attention_patterns(ids)  # the patterns alone: the view needs nothing else
        path = viz.html.show_attention(patterns, inspection.token_labels(model, ids), layers=layers).save(output)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {len(ids)} tokens)", file=sys.stderr)
        return 0
    run = Run(args, model, ids, inspection.token_labels(model, ids), *model.run_with_cache(ids))
    return _save(viz, DRAW[view](run, viz, inspection), output, args)


def _check_arguments(args, viz) -> str:
    """The output path, after refusing arguments the view cannot use."""
    view = args.view
    output = args.output or ("attention.html" if view == "html" else f"{view}.png")
    suffix = output.lower().rsplit(".", 1)[-1] if "." in output else ""
    if view == "html" and suffix not in ("html", "htm"):
        raise InputError(f"the html view writes an HTML file: end --output with .html (got {output!r})")
    if view != "html" and f".{suffix}" not in viz.FORMATS:
        raise InputError(f"cannot tell the image format of {output!r}: end --output with {', '.join(viz.FORMATS)}")
    if view != "positions" and args.text is None:
        raise InputError(f"the {view} view needs a text to run: npgpt viz {view} \"some text\"")
    if args.k < 1:
        raise InputError(f"--k must be at least 1, got {args.k}")
    if not (math.isfinite(args.gamma) and args.gamma > 0):
        raise InputError(f"--gamma must be a number > 0 (1 is linear, < 1 shows small weights), got {args.gamma}")
    if not MIN_DPI <= args.dpi <= MAX_DPI:
        raise InputError(f"--dpi must be between {MIN_DPI} and {MAX_DPI} (default 150), got {args.dpi}")
    return output


@dataclass
class Run:
    """One text through the model: what every view draws from."""

    args: argparse.Namespace
    model: object
    ids: np.ndarray
    tokens: list
    logits: np.ndarray
    cache: dict


def _attention(run, viz, inspection):
    layer = _check_layer_head(run.model, run.args.layer, run.args.head)
    return viz.attention_heatmap(run.cache["pattern", layer], run.tokens, head=run.args.head, layer=layer, gamma=run.args.gamma)


def _activations(run, viz, inspection):
    layer = _check_layer_head(run.model, run.args.layer)
    return viz.mlp_activations(run.cache["post", layer], run.tokens, layer=layer)


def _scores(run, viz, inspection):
    values = getattr(inspection.head_scores(run.cache, run.ids), run.args.score.replace("-", "_"))
    if np.all(np.isnan(values)):
        raise InputError("no token repeats in this text, so the induction score is undefined; use a text that repeats itself")
    return viz.head_heatmap(values, title=f"{run.args.score} score per head", label="mean attention", cmap="viridis")


def _attribution(run, viz, inspection):
    dla = inspection.direct_logit_attribution(run.model, run.cache, target=_target(run.args.target), position=run.args.position)
    target = viz.token_label(inspection.token_labels(run.model, [dla.target])[0])
    return viz.logit_attribution(dla, title=f"direct logit attribution of {target!s} at position {dla.position} (logit {dla.logit:.2f})")


def _next_token(run, viz, inspection):
    n, position = len(run.ids), run.args.position
    if not -n <= position < n:
        raise InputError(f"--position {position} is outside the text's {n} tokens")
    row = run.logits[position % n]
    p = np.exp(row - row.max())
    p /= p.sum()
    top = np.argsort(-p, kind="stable")[: run.args.k]
    return viz.next_token_distribution(inspection.token_labels(run.model, top), p[top],
                                       title=f"next token after {viz.token_label(run.tokens[position % n])} (top {len(top)})")


DRAW = {
    "attention": _attention,
    "grid": lambda run, viz, inspection: viz.attention_grid(run.cache, run.tokens, gamma=run.args.gamma if run.args.gamma != 1.0 else 0.5),
    "logit-lens": lambda run, viz, inspection: viz.logit_lens_heatmap(inspection.logit_lens(
        run.model, run.cache, run.ids, k=1, positions=np.arange(max(0, len(run.ids) - 20), len(run.ids)))),
    "activations": _activations,
    "residual": lambda run, viz, inspection: viz.residual_norm_heatmap(inspection.residual_norms(run.cache), run.tokens),
    "entropy": lambda run, viz, inspection: viz.entropy_heatmap(inspection.head_scores(run.cache, run.ids).entropy, n_seq=len(run.ids)),
    "scores": _scores,
    "flow": lambda run, viz, inspection: viz.attention_flow_graph(inspection.attention_flow(run.cache, run.args.position), run.tokens),
    "attribution": _attribution,
    "ablation": lambda run, viz, inspection: viz.head_heatmap(
        inspection.ablation_scan(run.model, run.ids, target=_target(run.args.target), position=run.args.position),
        title="change in log p(target) when a head is zeroed", label="Δ log p", diverging=True),
    "next-token": _next_token,
}


def _target(text):
    """--target: an integer id, or text (kept as a string, checked to be one token later)."""
    if text is None:
        return None
    return int(text) if text.strip().lstrip("-").isdigit() else text


def _save(viz, fig, output: str, args) -> int:
    path = viz.save(fig, output, dpi=args.dpi)
    print(f"wrote {path}", file=sys.stderr)
    return 0
