"""npgpt's pictures: matplotlib plots and self-contained HTML views.

    import viz
    fig = viz.attention_heatmap(cache["pattern", 3], tokens, head=5)   # a matplotlib Figure
    viz.save(fig, "l3h5.png")
    viz.show_attention(cache, tokens)                                # interactive, in a notebook

``viz.plots`` has the static pictures (its docstring lists them), ``viz.html`` the interactive
attention view, ``viz.labels`` the token-label rules. Everything here reads the activation cache (``model.run_with_cache``) and generation traces that
``npgpt`` produces; it never reaches into the model.
"""

from . import html
from .html import AttentionView, attention_view, show_attention
from .labels import token_label, token_labels
from .plots import (
    FORMATS, attention_entropy, attention_flow, attention_grid, attention_heatmap, head_heatmap,
    layer_patterns, logit_attribution, logit_lens, mlp_activations, next_token_distribution,
    positional_embedding, residual_norms, save,
)

__all__ = [
    "html", "AttentionView", "attention_view", "show_attention",
    "token_label", "token_labels", "FORMATS", "attention_entropy", "attention_flow", "attention_grid",
    "attention_heatmap", "head_heatmap", "layer_patterns", "logit_attribution", "logit_lens",
    "mlp_activations", "next_token_distribution", "positional_embedding", "residual_norms", "save",
]
