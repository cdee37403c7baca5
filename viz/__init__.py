"""npgpt's pictures: matplotlib plots and self-contained HTML views.

    import viz
    fig = viz.attention_heatmap(cache["pattern", 3], tokens, head=5)   # a Figure; shows itself in Jupyter
    viz.save(fig, "l3h5.png")
    viz.show_attention(cache, tokens)                                # interactive, in a notebook

``viz.plots`` has the static pictures (its docstring lists them), ``viz.diagrams`` the block
diagram (``viz.block_diagram(cache)``), ``viz.html`` the interactive
attention view, ``viz.labels`` the token-label rules. Everything here reads the activation cache
(``model.run_with_cache``), ``npgpt.inspection``'s results and generation traces; it never
reaches into the model. ``npgpt.inspection`` computes (``inspection.logit_lens(model, cache)``),
``viz`` draws what it computed (``viz.logit_lens_heatmap(lens)``): the two never share a name.
"""

import importlib
import warnings

from . import html
from .html import AttentionView, attention_view, show_attention
from .labels import display_labels, token_label

# The matplotlib drawings are imported when first used (``viz.attention_heatmap``, ``viz.plots``),
# so that ``import viz`` for the HTML view does not load matplotlib (half a second).
LAZY = {name: "plots" for name in (
    "FORMATS", "Figure", "attention_flow_graph", "copy_losses", "attention_grid", "attention_heatmap", "entropy_heatmap",
    "head_heatmap", "layer_patterns", "logit_attribution", "logit_lens_heatmap", "mlp_activations",
    "next_token_distribution", "positional_embedding_plot", "residual_norm_heatmap", "save",
)} | {"block_diagram": "diagrams", "block_shapes": "diagrams"}

__all__ = [
    "html", "block_diagram", "block_shapes", "AttentionView", "attention_view", "show_attention", "display_labels", "token_label",
    "FORMATS", "Figure", "attention_flow_graph", "copy_losses", "attention_grid", "attention_heatmap", "entropy_heatmap",
    "head_heatmap", "layer_patterns", "logit_attribution", "logit_lens_heatmap", "mlp_activations",
    "next_token_distribution", "positional_embedding_plot", "residual_norm_heatmap", "save",
]

# Names before npgpt 0.2, when each of these shared its name with the npgpt.inspection function
# whose result it draws.
RENAMED = {
    "attention_entropy": "entropy_heatmap", "attention_flow": "attention_flow_graph", "logit_lens": "logit_lens_heatmap",
    "positional_embedding": "positional_embedding_plot", "residual_norms": "residual_norm_heatmap",
    "token_labels": "display_labels",
}


def __getattr__(name):
    if name in RENAMED:
        warnings.warn(f"viz.{name} is now viz.{RENAMED[name]}", DeprecationWarning, stacklevel=2)
        target = RENAMED[name]
        return globals()[target] if target in globals() else __getattr__(target)
    if name in ("plots", "diagrams"):
        return importlib.import_module(f".{name}", __name__)
    if name in LAZY:
        value = getattr(importlib.import_module(f".{LAZY[name]}", __name__), name)
        globals()[name] = value  # once imported, a plain attribute
        return value
    raise AttributeError(f"module 'viz' has no attribute {name!r}")
