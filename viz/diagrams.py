"""Diagrams drawn from an activation cache: one transformer block, every tensor with its shape.

    logits, cache = model.run_with_cache(ids)
    viz.block_diagram(cache, layer=0)        # a Figure; shows itself in Jupyter

Every shape in the picture is read from the cache (``cache[name].shape``), and every axis name
and caption from ``npgpt.activations.ACTIVATIONS``: nothing about the model is typed here, so the
picture of gpt2 and of the bundled Shakespeare model differ exactly as their caches do.

Leaves out: the weights' shapes (the cache holds activations only) and any call into the model.
"""

from __future__ import annotations

from collections.abc import Mapping

from npgpt.activations import ACTIVATIONS, BLOCK_PREFIX
from npgpt.errors import InputError

from .plots import Figure

__all__ = ["block_diagram", "block_shapes"]

# The block's activations in the order the forward pass makes them, and the column each sits in:
# 0 is the residual stream, 1 the branch that writes into it. q, k and v share one row.
LAYOUT = (
    (("resid_pre",), 0), (("ln1",), 1), (("attn.q", "attn.k", "attn.v"), 1), (("attn.scores",), 1),
    (("attn.pattern",), 1), (("attn.z",), 1), (("attn_out",), 1), (("resid_mid",), 0), (("ln2",), 1),
    (("mlp.pre",), 1), (("mlp.post",), 1), (("mlp_out",), 1), (("resid_post",), 0),
)
COLUMN_X = (0.2, 0.66)
STREAM_COLOR, ATTN_COLOR, MLP_COLOR = "#dbe9f6", "#fde2c8", "#d9f0d3"


def block_shapes(cache: Mapping, layer: int = 0) -> list[tuple[str, str, str]]:
    """(name, shape, caption) of each activation of block ``layer``, in forward-pass order.

    shape reads ``[n_seq=15, n_embd=192]``: the axis names of ``ACTIVATIONS`` with the sizes of
    ``cache[name].shape`` (a cache of one sequence has no batch axis, so ``batch`` is dropped).
    """
    n_layer = sum(1 for name in cache if name.endswith(".resid_pre"))
    if n_layer == 0:
        raise InputError("the cache holds no block activations; make it with model.run_with_cache(ids)")
    if not -n_layer <= layer < n_layer:
        raise InputError(f"layer {layer} is out of range for a cache of {n_layer} layers")
    layer %= n_layer
    rows = []
    for names, _ in LAYOUT:
        for suffix in names:
            template = BLOCK_PREFIX + suffix
            axes, about = ACTIVATIONS[template]
            name = template.replace("{l}", str(layer))
            if name not in cache:
                raise InputError(f"the cache has no {name!r}; make it with model.run_with_cache(ids)")
            shape = tuple(cache[name].shape)
            axes = axes[len(axes) - len(shape):]  # no batch axis for one sequence
            about = about.replace("block l", f"block {layer}")
            rows.append((name, "[" + ", ".join(f"{a}={n}" for a, n in zip(axes, shape)) + "]", about))
    return rows


def _color(name: str) -> str:
    if ".attn" in name or "ln1" in name:
        return ATTN_COLOR
    if ".mlp" in name or "ln2" in name:
        return MLP_COLOR
    return STREAM_COLOR


def _arrow(ax, start, end, **style) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color="#444444", lw=1.0,
                                                          shrinkA=0, shrinkB=0, **style))


def _boxes(ax, rows: list[tuple[str, str, str]], row_height: float) -> dict[str, tuple[float, float]]:
    """Draw one box per activation; return each box's centre."""
    by_name = {name.split(".", 2)[2]: (name, shape, about) for name, shape, about in rows}
    centres = {}
    for row, (names, column) in enumerate(LAYOUT):
        y = row * row_height
        for index, suffix in enumerate(names):
            name, shape, about = by_name[suffix]
            x = COLUMN_X[column] + (index - (len(names) - 1) / 2) * 0.215
            if len(names) == 1:
                text = f"{shape}\n{about}"
            else:  # three boxes side by side: the shape on two lines
                text = shape.replace(", n_seq", ",\nn_seq")
            text = f"$\\bf{{{suffix.replace('_', chr(92) + '_')}}}$\n{text}"
            ax.text(x, y, text, ha="center", va="center", fontsize=7.0 if len(names) == 1 else 6.2,
                    bbox=dict(boxstyle="round,pad=0.35", fc=_color(name), ec="#777777", lw=0.8))
            centres[suffix] = (x, y)
    return centres


def block_diagram(cache: Mapping, layer: int = 0, *, title: str | None = None) -> Figure:
    """One pre-norm transformer block: the residual stream on the left, the two branches (attention,
    MLP) that each read a layer-normed copy of it and add their output back (the skip connections).

    Each box is an activation of ``cache`` (``model.run_with_cache(ids)``) with its name, its
    shape read from the cache and its caption from ``npgpt.activations.ACTIVATIONS``.
    """
    rows = block_shapes(cache, layer)
    layer = int(rows[0][0].split(".")[1])
    row_height = 1.0
    fig = Figure(figsize=(7.6, 0.62 * len(LAYOUT) + 0.9))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.93 if title is not False else 0.98))
    ax.set_xlim(0, 1)
    ax.set_ylim(len(LAYOUT) * row_height + 0.1, -1.2)
    ax.axis("off")
    centres = _boxes(ax, rows, row_height)
    stream_x, branch_x = COLUMN_X
    half = 0.36  # half a box's height, in rows
    source = "embed + pos_embed" if layer == 0 else f"blocks.{layer - 1}.resid_post"
    ax.text(stream_x, -0.95, f"from {source}", ha="center", va="center", fontsize=7, color="#555555")
    _arrow(ax, (stream_x, -0.8), (stream_x, centres["resid_pre"][1] - half))
    for branch, (first, last, target, start) in {
        "attn": ("ln1", "attn_out", "resid_mid", "resid_pre"), "mlp": ("ln2", "mlp_out", "resid_post", "resid_mid"),
    }.items():
        names = [s for names, column in LAYOUT for s in names if column == 1]
        chain = names[names.index(first): names.index(last) + 1]
        y_start, y_target = centres[start][1], centres[target][1]
        _arrow(ax, (stream_x + 0.12, y_start), (branch_x, centres[first][1] - half),
               connectionstyle="angle,angleA=0,angleB=90")  # the branch reads the stream
        for a, b in zip(chain, chain[1:]):
            if (a, b) in (("attn.q", "attn.k"), ("attn.k", "attn.v")):
                continue
            a_y = centres[a][1] if b != "attn.scores" else centres["attn.k"][1]
            _arrow(ax, (branch_x, a_y + half), (branch_x, centres[b][1] - half))
        _arrow(ax, (branch_x - 0.16, centres[last][1]), (stream_x + 0.03, y_target - half - 0.12),
               connectionstyle="angle,angleA=180,angleB=-90")  # ... and adds its output back
        _arrow(ax, (stream_x, y_start + half), (stream_x, y_target - half))  # the skip connection
        ax.text(stream_x - 0.03, y_target - half - 0.2, "+", ha="right", va="center", fontsize=13, fontweight="bold")
        ax.text(stream_x - 0.16, (y_start + y_target) / 2, f"skip\nconnection\n({branch})", ha="center",
                va="center", fontsize=6.5, color="#555555")
    sink = "ln_final" if f"blocks.{layer + 1}.resid_pre" not in cache else f"blocks.{layer + 1}.resid_pre"
    y_end = centres["resid_post"][1]
    ax.text(stream_x, y_end + 0.85, f"to {sink}", ha="center", va="center", fontsize=7, color="#555555")
    _arrow(ax, (stream_x, y_end + half), (stream_x, y_end + 0.7))
    if title is not False:
        fig.suptitle(title or f"block {layer}: shapes read from the activation cache", fontsize=9)
    return fig
