"""Static pictures of a forward pass with matplotlib: each function takes arrays, returns a Figure.

    logits, cache = model.run_with_cache(ids)
    tokens = npgpt.inspection.token_labels(model, ids)
    fig = viz.attention_heatmap(cache["pattern", 3], tokens, head=5, layer=3)
    viz.save(fig, "l3h5.png")                    # .png, .svg or .pdf, written atomically

| function | draws | takes |
|---|---|---|
| ``attention_heatmap`` | one head's pattern, tokens as tick labels | [n_seq, n_kv] or [n_head, n_seq, n_kv] + head |
| ``attention_grid`` | a layer x head grid of thumbnails | the cache, or [n_layer, n_head, n_seq, n_kv] |
| ``head_heatmap`` | one number per head (entropy, scores, DLA, ablation) | [n_layer, n_head] |
| ``entropy_heatmap`` | mean attention entropy per head | [n_layer, n_head] |
| ``residual_norm_heatmap`` | residual-stream norm per layer and position | [n_layer + 1, n_seq] |
| ``mlp_activations`` | tokens x the most active MLP neurons | [n_seq, d_mlp] (``cache["post", l]``) |
| ``logit_lens_heatmap`` | each layer's top token and its probability | a ``LogitLens`` or arrays |
| ``copy_losses`` | loss per position on a random sequence repeated twice, with heads ablated | a ``CopyingProbe`` or [n_probe, 2 * length - 1] |
| ``next_token_distribution`` | the top-k candidates of one generation step | token strings + probabilities |
| ``positional_embedding_plot`` | wpe and its principal components | [n_ctx, n_embd] |
| ``attention_flow_graph`` | one token's attention rollout across layers | an ``AttentionFlow`` or flow + mixing arrays |
| ``logit_attribution`` | direct logit attribution of heads, MLPs, embeddings | a ``LogitAttribution`` or arrays |

Figures are ``viz.plots.Figure``, a ``matplotlib.figure.Figure`` made without pyplot: no global
state, nothing to close, any backend (tests use Agg). It shows itself as a picture wherever
IPython displays it (JupyterLab, an executed notebook, a Qt console) through ``_repr_png_``,
without pyplot, ``%matplotlib inline`` or any other setup; a bare matplotlib Figure would only
print ``<Figure size ...>`` there until pyplot's inline backend is loaded.

Token labels go through ``viz.labels.token_label`` (spaces as "·", newlines as "⏎"), and tick
labels are thinned to what fits (``tick_step``), so a 1024-token heatmap stays readable; when
thinned, each label starts with its position.

Leaves out: interactive plots (see ``viz.html``), animations, and any call into the model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize, PowerNorm, TwoSlopeNorm
import matplotlib.figure
from matplotlib.ticker import MaxNLocator

from npgpt._files import atomic_write
from npgpt.errors import InputError

from .labels import display_labels, thinned, tick_step

__all__ = [
    "attention_heatmap", "attention_grid", "head_heatmap", "entropy_heatmap", "residual_norm_heatmap",
    "mlp_activations", "logit_lens_heatmap", "next_token_distribution", "positional_embedding_plot",
    "attention_flow_graph", "logit_attribution", "layer_patterns", "save", "FORMATS", "Figure", "copy_losses",
]

FORMATS = (".png", ".svg", ".pdf")
NOTEBOOK_DPI = 100  # pixels per inch of the picture a notebook stores


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that displays itself as a PNG in Jupyter (``_repr_png_``), with no
    pyplot and no inline backend needed. Everything else is matplotlib's Figure."""

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=NOTEBOOK_DPI)
        return buffer.getvalue()
TICK_FONT = 7.0  # points
ATTENTION_CMAP = "Blues"  # 0 is white, so the masked (future) half of a causal pattern is blank
DIVERGING_CMAP = "RdBu_r"


# ---- inputs ------------------------------------------------------------------------------------


def layer_patterns(source) -> np.ndarray:
    """Every layer's attention pattern as one array [n_layer, n_head, n_seq, n_kv].

    source: an activation cache of one sequence (``model.run_with_cache(ids)[1]``), a list of
    per-layer [n_head, n_seq, n_kv] arrays, or the 4-d array itself.
    """
    if isinstance(source, Mapping):
        n_layer = sum(1 for name in source if str(name).endswith(".attn.pattern"))
        if n_layer == 0:
            raise InputError("the activation cache has no attention patterns; pass model.run_with_cache(ids)[1]")
        patterns = np.stack([np.asarray(source[f"blocks.{l}.attn.pattern"]) for l in range(n_layer)])
    else:
        patterns = np.asarray(source) if not isinstance(source, (list, tuple)) else np.stack([np.asarray(p) for p in source])
    if patterns.ndim != 4:
        raise InputError(
            f"attention patterns must be [n_layer, n_head, n_seq, n_kv], got shape {patterns.shape}; "
            "for a batch, pass one row (run_with_cache on ids of shape [n_seq])"
        )
    return patterns


def _pattern2d(pattern, head) -> np.ndarray:
    pattern = np.asarray(pattern)
    if pattern.ndim == 3:
        if head is None:
            raise InputError(f"pattern has {pattern.shape[0]} heads ({pattern.shape}); say which with head=")
        if not 0 <= head < pattern.shape[0]:
            raise InputError(f"head {head} does not exist: this layer has heads 0..{pattern.shape[0] - 1}")
        pattern = pattern[head]
    if pattern.ndim != 2:
        raise InputError(f"one head's pattern must be [n_seq, n_kv], got shape {pattern.shape}")
    return pattern


def _labels(tokens, n: int, what: str) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(n)]
    tokens = list(tokens)
    if len(tokens) != n:
        raise InputError(f"{len(tokens)} {what} labels for {n} {what}s; pass one label per {what}")
    return display_labels(tokens, for_font=True)


def _ticks(labels: list[str], length_in: float, fontsize: float = TICK_FONT) -> tuple[list[int], list[str], float]:
    """The tick positions and labels that fit along ``length_in`` inches, and how far they reach
    out from the axis (inches, to size the margin)."""
    positions, shown = thinned(labels, tick_step(len(labels), length_in, fontsize))
    longest = max((len(t) for t in shown), default=1)
    return positions, shown, 0.1 + longest * fontsize * 0.62 / 72


def _apply_ticks(ax, axis: str, ticks, fontsize: float = TICK_FONT) -> None:
    positions, shown, _ = ticks
    if axis == "x":
        ax.set_xticks(positions, shown, fontsize=fontsize, rotation=90, parse_math=False)
    else:
        ax.set_yticks(positions, shown, fontsize=fontsize, parse_math=False)


def _figure(width_in: float, height_in: float) -> Figure:
    return Figure(figsize=(width_in, height_in), dpi=100)


# ---- attention ---------------------------------------------------------------------------------


def attention_heatmap(pattern, tokens=None, *, head: int | None = None, layer: int | None = None, keys=None,
                      title: str | None = None, gamma: float = 1.0, size_in: float | None = None) -> Figure:
    """One head's attention pattern: queries down, keys across, token text on both axes.

    pattern: [n_seq, n_kv], or a layer's [n_head, n_seq, n_kv] with ``head``. tokens: the
    n_seq query tokens; keys: the n_kv key tokens (default: tokens, when n_kv == n_seq). The
    image's data is the pattern itself (``fig.axes[0].images[0].get_array()``); gamma < 1 only
    changes the colour scale, to show small weights.
    """
    p = _pattern2d(pattern, head)
    n_seq, n_kv = p.shape
    if keys is None and tokens is not None and n_kv != n_seq:
        raise InputError(f"the pattern looks at {n_kv} keys but {n_seq} tokens were given; pass keys= too")
    q_labels = _labels(tokens, n_seq, "query")
    k_labels = _labels(keys if keys is not None else tokens, n_kv, "key")
    side = size_in or float(np.clip(0.2 * max(n_seq, n_kv), 3.0, 11.0))
    w = side * n_kv / max(n_seq, n_kv)
    h = side * n_seq / max(n_seq, n_kv)
    x_ticks, y_ticks = _ticks(k_labels, w), _ticks(q_labels, h)
    margin_l, margin_b, margin_t, margin_r = y_ticks[2] + 0.45, x_ticks[2] + 0.5, 0.5, 1.0
    fig = _figure(margin_l + w + margin_r, margin_b + h + margin_t)
    W, H = fig.get_size_inches()
    ax = fig.add_axes([margin_l / W, margin_b / H, w / W, h / H])
    vmax = float(p.max()) if p.size and p.max() > 0 else 1.0
    norm = PowerNorm(gamma, 0.0, vmax) if gamma != 1.0 else Normalize(0.0, vmax)
    im = ax.imshow(p, cmap=ATTENTION_CMAP, norm=norm, interpolation="nearest", aspect="auto")
    _apply_ticks(ax, "x", x_ticks)
    _apply_ticks(ax, "y", y_ticks)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.tick_params(length=2, pad=1)
    where = " ".join(s for s in (f"layer {layer}" if layer is not None else "", f"head {head}" if head is not None else "") if s)
    ax.set_title(title or f"attention{' — ' + where if where else ''}", fontsize=10)
    cax = fig.add_axes([(margin_l + w + 0.15) / W, margin_b / H, 0.15 / W, h / H])
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=TICK_FONT)
    return fig


def attention_grid(patterns, tokens=None, *, title: str | None = None, gamma: float = 0.5, thumb_in: float | None = None) -> Figure:
    """A thumbnail of every head: rows are layers, columns heads.

    patterns: the cache of one sequence or [n_layer, n_head, n_seq, n_kv]. All thumbnails share
    one colour scale, attention 0..1 drawn with ``PowerNorm(gamma)`` so weak heads still show.
    tokens only set the title's length count (thumbnails are too small for labels).
    """
    patterns = layer_patterns(patterns)
    n_layer, n_head, n_seq, n_kv = patterns.shape
    thumb = thumb_in or float(np.clip(24.0 / max(n_head, n_layer), 0.45, 1.2))
    gap, margin_l, margin_t, margin_b, margin_r = 0.06, 0.5, 0.7, 0.2, 0.7
    W = margin_l + n_head * (thumb + gap) + margin_r
    H = margin_t + n_layer * (thumb + gap) + margin_b
    fig = _figure(W, H)
    norm = PowerNorm(gamma, 0.0, 1.0)
    im = None
    for l in range(n_layer):
        for h in range(n_head):
            x0 = margin_l + h * (thumb + gap)
            y0 = H - margin_t - (l + 1) * (thumb + gap) + gap
            ax = fig.add_axes([x0 / W, y0 / H, thumb / W, thumb / H])
            im = ax.imshow(patterns[l, h], cmap=ATTENTION_CMAP, norm=norm, interpolation="antialiased", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_label(f"L{l}H{h}")
            if l == 0:
                ax.set_title(f"H{h}", fontsize=7, pad=2)
            if h == 0:
                ax.set_ylabel(f"L{l}", fontsize=7, rotation=0, ha="right", va="center", labelpad=4)
    n = len(tokens) if tokens is not None else n_seq
    fig.suptitle(title or f"attention of every head ({n} tokens; colour: weight^{gamma:g})", fontsize=10,
                 y=1 - 0.25 / H, va="top")
    cax = fig.add_axes([(W - margin_r + 0.2) / W, margin_b / H, 0.12 / W, (H - margin_t - margin_b) / H])
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=TICK_FONT)
    return fig


def head_heatmap(values, *, title: str = "", label: str = "", diverging: bool = False, cmap: str | None = None,
                 annotate: bool | None = None, fmt: str = "{:.2f}") -> Figure:
    """One number per head, [n_layer, n_head], as a heatmap with the values written in (when they fit).

    diverging=True centres the colour scale on 0 (for DLA and ablation, where sign matters).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise InputError(f"per-head values must be [n_layer, n_head], got shape {v.shape}")
    n_layer, n_head = v.shape
    cell = float(np.clip(9.0 / max(n_head, 1), 0.3, 0.6))
    margin_l, margin_b, margin_t, margin_r = 0.7, 0.6, 0.6, 1.2
    w, h = n_head * cell, n_layer * cell
    fig = _figure(margin_l + w + margin_r, margin_b + h + margin_t)
    W, H = fig.get_size_inches()
    ax = fig.add_axes([margin_l / W, margin_b / H, w / W, h / H])
    finite = v[np.isfinite(v)]
    if diverging:
        bound = float(np.max(np.abs(finite))) if finite.size and np.max(np.abs(finite)) > 0 else 1.0
        norm = TwoSlopeNorm(0.0, -bound, bound)
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        norm = Normalize(lo, hi if hi > lo else lo + 1.0)
    im = ax.imshow(v, cmap=cmap or (DIVERGING_CMAP if diverging else "viridis"), norm=norm, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(range(n_head), [str(i) for i in range(n_head)], fontsize=TICK_FONT)
    ax.set_yticks(range(n_layer), [str(i) for i in range(n_layer)], fontsize=TICK_FONT)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=10)
    if annotate if annotate is not None else cell >= 0.4:
        for (l, hd), x in np.ndenumerate(v):
            if np.isfinite(x):
                dark = norm(x) > 0.6 if not diverging else abs(norm(x) - 0.5) > 0.3
                ax.text(hd, l, fmt.format(x), ha="center", va="center", fontsize=6,
                        color="white" if dark else "black", parse_math=False)
    cax = fig.add_axes([(margin_l + w + 0.15) / W, margin_b / H, 0.15 / W, h / H])
    cb = fig.colorbar(im, cax=cax)
    cb.ax.tick_params(labelsize=TICK_FONT)
    cb.set_label(label, fontsize=8)
    return fig


def entropy_heatmap(entropy, *, n_seq: int | None = None, title: str | None = None) -> Figure:
    """Mean attention entropy per head ([n_layer, n_head], nats; ``HeadScores.entropy``).

    Low: the head looks at few tokens (previous token, first token, a copy); high: it averages.
    With n_seq, the title gives the largest possible mean (uniform attention) for comparison.
    """
    ref = ""
    if n_seq:
        ref = f"; uniform attention would give {np.mean(np.log(np.arange(1, n_seq + 1))):.2f}"
    return head_heatmap(entropy, title=title or f"mean attention entropy per head (nats{ref})", label="nats")


def attention_flow_graph(flow, tokens=None, *, mixing=None, max_edges: int = 150, title: str | None = None) -> Figure:
    """One token's attention rollout drawn as a layered graph (``npgpt.inspection.attention_flow``).

    flow: an ``AttentionFlow`` (or its [n_layer + 1, n_seq] flow array with ``mixing``). Rows are
    the residual stream from the embeddings (bottom) to the last layer (top); dot size is the share
    of the chosen token's final state that passes through that position; lines are the strongest
    ``max_edges`` links per layer, thicker for more flow.
    """
    from matplotlib.collections import LineCollection

    if hasattr(flow, "flow"):
        mixing, flow = flow.mixing, flow.flow
    flow = np.asarray(flow, dtype=np.float64)
    if mixing is None:
        raise InputError("attention_flow needs the mixing matrices: pass an AttentionFlow or mixing=")
    mixing = np.asarray(mixing, dtype=np.float64)
    n_rows, n_seq = flow.shape
    n_layer = n_rows - 1
    if mixing.shape != (n_layer, n_seq, n_seq):
        raise InputError(f"mixing must be [{n_layer}, {n_seq}, {n_seq}] to match flow {flow.shape}, got {mixing.shape}")
    position = int(np.flatnonzero(flow[-1])[0]) if flow[-1].any() else n_seq - 1
    n_show = position + 1  # later positions cannot influence this token
    labels = _labels(tokens, n_seq, "token")[:n_show]
    w = float(np.clip(0.22 * n_show, 4.0, 16.0))
    h = float(np.clip(0.45 * n_rows, 2.5, 10.0))
    x_ticks = _ticks(labels, w)
    margin_l, margin_b, margin_t, margin_r = 0.9, x_ticks[2] + 0.2, 0.5, 0.3
    fig = _figure(margin_l + w + margin_r, margin_b + h + margin_t)
    W, H = fig.get_size_inches()
    ax = fig.add_axes([margin_l / W, margin_b / H, w / W, h / H])
    segments, widths = [], []
    for l in range(n_layer):
        e = flow[l + 1][:n_show, None] * mixing[l][:n_show, :n_show]  # [query at l+1, key at l]
        flat = e.ravel()
        keep = np.argsort(-flat)[:max_edges]
        keep = keep[flat[keep] > 1e-4]
        for idx in keep:
            i, j = divmod(int(idx), n_show)
            segments.append([(i, l + 1), (j, l)])
            widths.append(flat[idx])
    widths = np.asarray(widths)
    if len(segments):
        lw = 0.3 + 4.0 * np.sqrt(widths / widths.max())
        ax.add_collection(LineCollection(segments, linewidths=lw, colors="tab:blue", alpha=0.45, zorder=1))
    xs, ys = np.meshgrid(np.arange(n_show), np.arange(n_rows))
    sizes = 4 + 160 * np.sqrt(flow[:, :n_show])
    ax.scatter(xs.ravel(), ys.ravel(), s=sizes.ravel(), c="tab:orange", edgecolors="black", linewidths=0.3, zorder=2)
    ax.set_xlim(-0.7, n_show - 0.3)
    ax.set_ylim(-0.5, n_rows - 0.5)
    _apply_ticks(ax, "x", x_ticks)
    ax.set_yticks(range(n_rows), ["embed"] + [f"after L{l}" for l in range(n_layer)], fontsize=TICK_FONT)
    ax.tick_params(length=2, pad=1)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(title or f"attention flow into token {position} ({labels[-1]}), rollout", fontsize=10)
    return fig


# ---- residual stream and MLP -------------------------------------------------------------------


def residual_norm_heatmap(norms, tokens=None, *, row_labels=None, title: str | None = None) -> Figure:
    """Residual-stream L2 norm per layer (rows) and position (columns), and its mean per layer.

    norms: [n_layer + 1, n_seq] (``npgpt.inspection.residual_norms``): row 0 the embeddings.
    """
    v = np.asarray(norms, dtype=np.float64)
    if v.ndim != 2:
        raise InputError(f"norms must be [n_rows, n_seq], got shape {v.shape}")
    n_rows, n_seq = v.shape
    labels = _labels(tokens, n_seq, "token")
    rows = list(row_labels) if row_labels is not None else ["embed"] + [f"after L{l}" for l in range(n_rows - 1)]
    w = float(np.clip(0.22 * n_seq, 3.0, 12.0))
    h = float(np.clip(0.3 * n_rows, 1.5, 8.0))
    x_ticks = _ticks(labels, w)
    margin_l, margin_b, margin_t, gap, side, margin_r = 0.9, x_ticks[2] + 0.2, 0.5, 1.3, 1.8, 0.3
    fig = _figure(margin_l + w + gap + side + margin_r, margin_b + h + margin_t)
    W, H = fig.get_size_inches()
    ax = fig.add_axes([margin_l / W, margin_b / H, w / W, h / H])
    im = ax.imshow(v, cmap="magma", aspect="auto", interpolation="nearest", origin="lower")
    _apply_ticks(ax, "x", x_ticks)
    ax.set_yticks(range(n_rows), rows, fontsize=TICK_FONT)
    ax.tick_params(length=2, pad=1)
    ax.set_title(title or "residual stream norm ||x||", fontsize=10)
    cax = fig.add_axes([(margin_l + w + 0.1) / W, margin_b / H, 0.12 / W, h / H])
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=TICK_FONT)
    ax2 = fig.add_axes([(margin_l + w + gap) / W, margin_b / H, side / W, h / H])
    later = v[:, 1:] if n_seq > 1 else v
    ax2.plot(later.mean(axis=1), np.arange(n_rows), marker="o", ms=3, label="mean, positions 1+")
    ax2.plot(v[:, 0], np.arange(n_rows), marker="s", ms=3, ls="--", label="position 0")
    ax2.set_yticks(range(n_rows), [""] * n_rows)
    ax2.set_ylim(-0.5, n_rows - 0.5)
    ax2.tick_params(labelsize=TICK_FONT)
    ax2.set_xlabel("norm", fontsize=8)
    ax2.legend(fontsize=6, loc="best")
    return fig


def mlp_activations(post, tokens=None, *, layer: int | None = None, neurons=None, top: int = 24,
                    title: str | None = None) -> Figure:
    """MLP neuron activations, tokens (rows) x neurons (columns).

    post: [n_seq, d_mlp], e.g. ``cache["post", layer]`` (after GELU). neurons: which to show;
    default the ``top`` neurons with the largest activation anywhere in the sequence, strongest first.
    """
    a = np.asarray(post, dtype=np.float64)
    if a.ndim != 2:
        raise InputError(f"MLP activations must be [n_seq, d_mlp], got shape {a.shape}; pass cache['post', layer]")
    n_seq, d_mlp = a.shape
    if neurons is None:
        top = int(min(max(1, top), d_mlp))
        neurons = np.argsort(-a.max(axis=0), kind="stable")[:top]
    neurons = np.asarray(neurons, dtype=np.int64)
    if neurons.size == 0 or neurons.min() < 0 or neurons.max() >= d_mlp:
        raise InputError(f"neuron indices must be in 0..{d_mlp - 1}")
    shown = a[:, neurons]  # [n_seq, n_neurons]
    labels = _labels(tokens, n_seq, "token")
    w = float(np.clip(0.28 * len(neurons), 3.0, 12.0))
    h = float(np.clip(0.2 * n_seq, 2.0, 12.0))
    x_ticks, y_ticks = _ticks([str(int(n)) for n in neurons], w), _ticks(labels, h)
    margin_l, margin_b, margin_t, margin_r = y_ticks[2] + 0.2, x_ticks[2] + 0.5, 0.5, 1.0
    fig = _figure(margin_l + w + margin_r, margin_b + h + margin_t)
    W, H = fig.get_size_inches()
    ax = fig.add_axes([margin_l / W, margin_b / H, w / W, h / H])
    bound = float(np.abs(shown).max()) or 1.0
    im = ax.imshow(shown, cmap=DIVERGING_CMAP, norm=TwoSlopeNorm(0.0, -bound, bound), aspect="auto",
                   interpolation="nearest")
    _apply_ticks(ax, "x", x_ticks)
    _apply_ticks(ax, "y", y_ticks)
    ax.set_xlabel("neuron")
    ax.tick_params(length=2, pad=1)
    ax.set_title(title or f"MLP activations{f' — layer {layer}' if layer is not None else ''} (after GELU)", fontsize=10)
    cax = fig.add_axes([(margin_l + w + 0.15) / W, margin_b / H, 0.15 / W, h / H])
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=TICK_FONT)
    return fig


# ---- predictions -------------------------------------------------------------------------------


def logit_lens_heatmap(lens, top_tokens=None, *, row_labels=None, tokens=None, max_positions: int = 20,
               title: str | None = None) -> Figure:
    """The logit lens as a table: rows are layers, columns positions; each cell is coloured by the
    top token's probability and shows that token.

    lens: a ``npgpt.inspection.LogitLens``, or the top-1 probabilities [n_rows, n_pos] with
    ``top_tokens`` [n_rows][n_pos] strings. Only the last ``max_positions`` positions are drawn, so
    the text stays readable. A bold token is the one that actually comes next.
    """
    if hasattr(lens, "top_probs"):
        probs = np.asarray(lens.top_probs)[..., 0]
        top_tokens = [[cell[0] for cell in row] for row in lens.top_tokens]
        row_labels = row_labels or ["embed"] + [f"L{r}" for r in lens.labels[1:]]
        tokens = tokens if tokens is not None else lens.tokens
        top_ids = np.asarray(lens.top_ids)[..., 0]
        actual = np.asarray(lens.next_ids)
        correct = top_ids == actual[None, :]
    else:
        probs = np.asarray(lens, dtype=np.float64)
        if top_tokens is None:
            raise InputError("logit_lens needs the top tokens: pass a LogitLens or top_tokens=")
        correct = np.zeros(probs.shape, dtype=bool)
    if probs.ndim != 2:
        raise InputError(f"logit-lens probabilities must be [n_rows, n_pos], got shape {probs.shape}")
    n_rows, n_pos = probs.shape
    if len(top_tokens) != n_rows or any(len(r) != n_pos for r in top_tokens):
        raise InputError(f"top_tokens must be {n_rows} rows of {n_pos} strings, like the probabilities")
    start = max(0, n_pos - max_positions)
    probs, correct = probs[:, start:], correct[:, start:]
    cells = [[display_labels([t], for_font=True, max_len=10)[0] for t in row[start:]] for row in top_tokens]
    labels = _labels(tokens, n_pos, "position")[start:] if tokens is not None else [str(i) for i in range(start, n_pos)]
    rows = list(row_labels) if row_labels is not None else [str(i) for i in range(n_rows)]
    n_show = probs.shape[1]
    cell_w, cell_h = 0.75, 0.32
    margin_l, margin_b, margin_t, margin_r = 0.7, _ticks(labels, 100.0)[2] + 0.45, 0.5, 1.0
    w, h = n_show * cell_w, n_rows * cell_h
    fig = _figure(margin_l + w + margin_r, margin_b + h + margin_t)
    W, H = fig.get_size_inches()
    ax = fig.add_axes([margin_l / W, margin_b / H, w / W, h / H])
    im = ax.imshow(probs, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", origin="lower", interpolation="nearest")
    for r in range(n_rows):
        for c in range(n_show):
            ax.text(c, r, cells[r][c], ha="center", va="center", fontsize=6.5, parse_math=False,
                    color="black" if probs[r, c] > 0.6 else "white", fontweight="bold" if correct[r, c] else "normal")
    ax.set_xticks(range(n_show), labels, fontsize=TICK_FONT, rotation=90, parse_math=False)
    ax.set_yticks(range(n_rows), rows, fontsize=TICK_FONT)
    ax.set_xlabel("input token (prediction is for the next one)", fontsize=8)
    ax.tick_params(length=2, pad=1)
    ax.set_title(title or "logit lens: top next-token guess after each layer", fontsize=10)
    cax = fig.add_axes([(margin_l + w + 0.15) / W, margin_b / H, 0.15 / W, h / H])
    cb = fig.colorbar(im, cax=cax)
    cb.ax.tick_params(labelsize=TICK_FONT)
    cb.set_label("p(top token)", fontsize=8)
    return fig


def copy_losses(losses, *, ablated=None, title: str | None = None) -> Figure:
    """Loss per position on random tokens repeated twice (``npgpt.inspection.copying_probe``):
    the first copy is unpredictable, the second is predictable only by copying. ``ablated``: the
    same with some heads knocked out, drawn beside it.

    losses, ablated: [n_probe, 2 * length - 1] or a ``CopyingProbe`` (its ``.losses``).
    """
    curves = {"model": losses, "heads ablated": ablated}
    fig = _figure(7.0, 3.2)
    ax = fig.subplots()
    length = None
    for (name, value), color in zip(curves.items(), ("tab:blue", "tab:red")):
        if value is None:
            continue
        value = np.asarray(getattr(value, "losses", value), dtype=np.float64)
        value = value.reshape(-1, value.shape[-1])
        length = (value.shape[1] + 1) // 2
        ax.plot(np.arange(1, value.shape[1] + 1), value.mean(axis=0), color=color, label=name, linewidth=1.2)
    if length is None:
        raise InputError("no losses given: pass copying_probe(model).losses")
    ax.axvline(length - 0.5, color="gray", linestyle="--", linewidth=0.8)
    ax.text(length / 2, 0.98, "first copy", transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8)
    ax.text(1.5 * length, 0.98, "second copy", transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8)
    ax.set_xlabel("position of the predicted token", fontsize=8)
    ax.set_ylabel("loss (nats)", fontsize=8)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=TICK_FONT)
    ax.legend(fontsize=8, loc="center left")
    ax.set_title(title or "next-token loss on random tokens repeated twice", fontsize=10)
    fig.tight_layout()
    return fig


def next_token_distribution(tokens, probs=None, *, chosen: int | str | None = None, title: str | None = None) -> Figure:
    """Top-k bars of one generation step: candidate tokens and their probabilities, likeliest on top.

    tokens: candidate strings; probs: their probabilities (any order; sorted here). chosen: the
    index into ``tokens`` (or the string) that was actually picked, drawn in another colour.
    ``tokens`` may also be one step of a generation trace (``npgpt.generate.StepTrace``, anything
    with ``.top`` = [(id, text, prob)] and ``.token_id``); its alternatives are drawn then.
    """
    if hasattr(tokens, "top") and probs is None:
        step = tokens
        tokens = [t.text if t.text is not None else f"#{t.id}" for t in step.top]
        probs = [t.prob for t in step.top]
        ids = [t.id for t in step.top]
        chosen = ids.index(step.token_id) if chosen is None and step.token_id in ids else chosen
        title = title or f"step {getattr(step, 'step', '?')}: top {len(ids)} next tokens"
    tokens = [str(t) for t in tokens]
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(tokens) != p.shape[0] or not tokens:
        raise InputError(f"need one probability per token: got {len(tokens)} tokens and {p.shape[0]} probabilities")
    if isinstance(chosen, str):
        chosen = tokens.index(chosen) if chosen in tokens else None
    order = np.argsort(-p, kind="stable")
    labels = display_labels([tokens[i] for i in order], for_font=True, max_len=20)
    k = len(order)
    h = 0.28 * k + 1.0
    fig = _figure(6.0, h + 0.3)
    W, H = fig.get_size_inches()
    ax = fig.add_axes([1.6 / W, 0.6 / H, 3.6 / W, (h - 0.9) / H])
    colors = ["tab:orange" if chosen is not None and i == chosen else "tab:blue" for i in order]
    ax.barh(np.arange(k), p[order], color=colors)
    ax.set_yticks(np.arange(k), labels, fontsize=8, parse_math=False)
    ax.invert_yaxis()
    ax.set_xlim(0, max(1e-9, float(p.max())) * 1.18)
    for y, v in enumerate(p[order]):
        ax.text(v, y, f" {v:.3f}" if v >= 1e-3 else f" {v:.2e}", va="center", fontsize=7)
    ax.set_xlabel("probability", fontsize=8)
    ax.tick_params(axis="x", labelsize=TICK_FONT)
    ax.set_title(title or f"next-token distribution (top {k})", fontsize=10)
    return fig


def logit_attribution(dla, *, mlp=None, others=None, title: str | None = None) -> Figure:
    """Direct logit attribution: a heatmap of the heads' parts and bars of everything else.

    dla: a ``npgpt.inspection.LogitAttribution``, or heads [n_layer, n_head] with ``mlp``
    [n_layer] and ``others`` {label: value} (embeddings, biases).
    """
    if hasattr(dla, "heads"):
        heads, mlp = dla.heads, dla.mlp
        others = {"embed": dla.embed, "pos_embed": dla.pos_embed, "attn biases": float(np.sum(dla.attn_bias)),
                  "ln_f bias": dla.ln_final_bias}
        title = title or f"direct logit attribution: token {dla.target} at position {dla.position} (logit {dla.logit:.2f})"
    heads = np.asarray(heads, dtype=np.float64)
    if heads.ndim != 2:
        raise InputError(f"head attributions must be [n_layer, n_head], got shape {heads.shape}")
    n_layer, n_head = heads.shape
    mlp = np.zeros(n_layer) if mlp is None else np.asarray(mlp, dtype=np.float64)
    others = dict(others or {})
    bars = [(f"L{l} mlp", float(v)) for l, v in enumerate(mlp)] + [(k, float(v)) for k, v in others.items()]
    cell = float(np.clip(6.0 / max(n_head, 1), 0.25, 0.5))
    hw, hh = n_head * cell, max(n_layer * cell, 0.22 * len(bars))
    fig = _figure(0.7 + hw + 1.1 + 1.2 + 2.6 + 0.3, 0.6 + hh + 0.6)
    W, H = fig.get_size_inches()
    ax = fig.add_axes([0.7 / W, 0.6 / H, hw / W, n_layer * cell / H])
    bound = float(max(np.abs(heads).max(), 1e-12))
    im = ax.imshow(heads, cmap=DIVERGING_CMAP, norm=TwoSlopeNorm(0.0, -bound, bound), aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n_head), [str(i) for i in range(n_head)], fontsize=TICK_FONT)
    ax.set_yticks(range(n_layer), [str(i) for i in range(n_layer)], fontsize=TICK_FONT)
    ax.set_xlabel("head", fontsize=8)
    ax.set_ylabel("layer", fontsize=8)
    ax.set_title("heads", fontsize=9)
    cax = fig.add_axes([(0.7 + hw + 0.1) / W, 0.6 / H, 0.12 / W, n_layer * cell / H])
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=TICK_FONT)
    ax2 = fig.add_axes([(0.7 + hw + 1.1 + 1.2) / W, 0.6 / H, 2.6 / W, hh / H])
    values = np.array([v for _, v in bars])
    ax2.barh(np.arange(len(bars)), values, color=["tab:red" if v > 0 else "tab:blue" for v in values])
    ax2.set_yticks(np.arange(len(bars)), [b for b, _ in bars], fontsize=TICK_FONT)
    ax2.invert_yaxis()
    ax2.axvline(0, color="black", lw=0.5)
    ax2.tick_params(axis="x", labelsize=TICK_FONT)
    ax2.set_title("MLPs and the rest", fontsize=9)
    fig.suptitle(title or "direct logit attribution", fontsize=10, y=1 - 0.15 / H, va="top")
    return fig


# ---- embeddings --------------------------------------------------------------------------------


def positional_embedding_plot(wpe, *, n_components: int = 3, title: str | None = None) -> Figure:
    """The positional embedding matrix and its principal components.

    wpe: [n_ctx, n_embd] (``npgpt.inspection.positional_embedding(model)``). Left: the matrix;
    middle: the top principal components as functions of position; right: position in the plane
    of the first two components, coloured by position (GPT-2's trace a smooth curve).
    """
    x = np.asarray(wpe, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError(f"the positional embedding must be [n_ctx, n_embd] with n_ctx >= 2, got shape {x.shape}")
    n_ctx, n_embd = x.shape
    k = int(min(max(1, n_components), n_ctx, n_embd))
    centered = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centered, full_matrices=False)
    pcs = u[:, :k] * s[:k]  # [n_ctx, k]: each position's coordinates on the top components
    explained = s**2 / max(float(np.sum(s**2)), 1e-300)
    fig = _figure(13.0, 4.2)
    ax0 = fig.add_axes([0.05, 0.14, 0.27, 0.74])
    bound = float(np.abs(x).max()) or 1.0
    im = ax0.imshow(x, cmap=DIVERGING_CMAP, norm=TwoSlopeNorm(0.0, -bound, bound), aspect="auto", interpolation="antialiased")
    ax0.set_xlabel("feature", fontsize=8)
    ax0.set_ylabel("position", fontsize=8)
    ax0.set_title(f"wpe [{n_ctx} x {n_embd}]", fontsize=9)
    ax0.tick_params(labelsize=TICK_FONT)
    fig.colorbar(im, ax=ax0, fraction=0.05, pad=0.02).ax.tick_params(labelsize=TICK_FONT)
    ax1 = fig.add_axes([0.41, 0.14, 0.27, 0.74])
    for i in range(k):
        ax1.plot(np.arange(n_ctx), pcs[:, i], lw=1, label=f"PC{i + 1} ({100 * explained[i]:.1f}%)")
    ax1.set_xlabel("position", fontsize=8)
    ax1.set_title("principal components over position", fontsize=9)
    ax1.legend(fontsize=7)
    ax1.tick_params(labelsize=TICK_FONT)
    ax2 = fig.add_axes([0.73, 0.14, 0.2, 0.74])
    second = pcs[:, 1] if k > 1 else np.zeros(n_ctx)
    sc = ax2.scatter(pcs[:, 0], second, c=np.arange(n_ctx), cmap="viridis", s=4)
    ax2.set_xlabel("PC1", fontsize=8)
    ax2.set_ylabel("PC2", fontsize=8)
    ax2.set_title("positions in the PC1-PC2 plane", fontsize=9)
    ax2.tick_params(labelsize=TICK_FONT)
    ax2.xaxis.set_major_locator(MaxNLocator(5))
    cb = fig.colorbar(sc, ax=ax2, fraction=0.05, pad=0.02)
    cb.ax.tick_params(labelsize=TICK_FONT)
    cb.set_label("position", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---- saving ------------------------------------------------------------------------------------


def save(fig: Figure, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` (.png, .svg or .pdf, from the suffix) atomically: a temporary file
    in the same folder is renamed into place, so an interrupted save never leaves half a file."""
    path = Path(os.fspath(path))
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"cannot tell the image format of {str(path)!r}: end the file name with {', '.join(FORMATS)}")
    return atomic_write(path, lambda f: fig.savefig(f, format=suffix[1:], dpi=dpi))
