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

import warnings

from . import html
from .diagrams import block_diagram, block_shapes
from .html import AttentionView, attention_view, show_attention
from .labels import display_labels, token_label
from .plots import (
    FORMATS, Figure, attention_flow_graph, copy_losses, attention_grid, attention_heatmap, entropy_heatmap, head_heatmap,
    layer_patterns, logit_attribution, logit_lens_heatmap, mlp_activations, next_token_distribution,
    positional_embedding_plot, residual_norm_heatmap, save,
)

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
        return globals()[RENAMED[name]]
    raise AttributeError(f"module 'viz' has no attribute {name!r}")
