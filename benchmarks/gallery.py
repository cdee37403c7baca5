"""Render every view of ``viz`` for one prompt into a folder, timing each; optionally measure the
size of the HTML attention view at the full 1024-token context.

    python benchmarks/gallery.py                                  # random gpt2-shaped weights
    python benchmarks/gallery.py --model weights/gpt2 --out /tmp/gallery
    python benchmarks/gallery.py --docs                           # also refresh docs/img/*.png
    python benchmarks/gallery.py --sizes                          # HTML size at 1024 tokens, 12 x 12 heads

Without ``--model`` the weights are random, of gpt2's shape, with the attention's query/key
weights scaled up (``--sharpen``, default 4) so that heads attend unevenly as trained ones do. The
pictures then show how the views look, not what GPT-2 has learned: pass a real model folder for
that.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import npgpt  # noqa: E402
import viz  # noqa: E402
from npgpt import inspection  # noqa: E402

# Public domain (Romeo and Juliet, II.2), with a repeat at the end for induction heads to find.
PROMPT = ("ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n"
          "JULIET:\nAy me!\nROMEO:\nShe speaks: O, speak again, bright angel!\nBut soft, what light through yonder window")
DOCS = {"attention": "attention.png", "grid": "grid.png", "logit_lens": "logit_lens.png", "flow": "flow.png"}


def random_gpt2(sharpen: float, n_layer: int = 12):
    model = npgpt.random_model(npgpt.PRESETS["gpt2"].replace(n_layer=n_layer), seed=0)
    if model.tokenizer is None:
        model.tokenizer = npgpt.Tokenizer.gpt2()
    n_embd = model.config.n_embd
    for block in model.params["h"]:  # scale W_Q and W_K (the first 2 * n_embd columns): sharper patterns
        block["attn"]["c_attn"]["weight"][:, : 2 * n_embd] *= np.float32(sharpen)
    model.name = f"random gpt2 weights, attention sharpened x{sharpen:g}"
    return model


def render(model, prompt: str, out: Path, layer: int, head: int, dpi: int) -> dict[str, Path]:
    ids = np.asarray(model.tokenizer.encode(prompt))
    tokens = inspection.token_labels(model, ids)
    t0 = time.perf_counter()
    logits, cache = model.run_with_cache(ids)
    print(f"forward pass, {len(ids)} tokens: {time.perf_counter() - t0:.2f} s")
    scores = inspection.head_scores(cache, ids)
    p = np.exp(logits[-1] - logits[-1].max())
    p /= p.sum()
    top = np.argsort(-p)[:10]
    views = {
        "attention": lambda: viz.attention_heatmap(cache["pattern", layer], tokens, head=head, layer=layer),
        "grid": lambda: viz.attention_grid(cache, tokens),
        "entropy": lambda: viz.entropy_heatmap(scores.entropy, n_seq=len(ids)),
        "induction": lambda: viz.head_heatmap(scores.induction, title="induction score per head", label="mean attention"),
        "previous_token": lambda: viz.head_heatmap(scores.previous_token, title="previous-token score per head", label="mean attention"),
        "residual_norms": lambda: viz.residual_norm_heatmap(inspection.residual_norms(cache), tokens),
        "mlp": lambda: viz.mlp_activations(cache["post", layer], tokens, layer=layer),
        "logit_lens": lambda: viz.logit_lens_heatmap(inspection.logit_lens(model, cache, ids, k=1, positions=np.arange(len(ids) - 16, len(ids)))),
        "next_token": lambda: viz.next_token_distribution(inspection.token_labels(model, top), p[top], chosen=0),
        "positions": lambda: viz.positional_embedding_plot(inspection.positional_embedding(model)),
        "flow": lambda: viz.attention_flow_graph(inspection.attention_flow(cache, -1), tokens),
        "attribution": lambda: viz.logit_attribution(inspection.direct_logit_attribution(model, cache)),
        "ablation": lambda: viz.head_heatmap(inspection.ablation_scan(model, ids[-8:]), title="Δ log p(top token) when a head is zeroed",
                                             label="Δ log p", diverging=True),
    }
    written = {}
    for name, make in views.items():
        t0 = time.perf_counter()
        fig = make()
        t1 = time.perf_counter()
        written[name] = viz.save(fig, out / f"{name}.png", dpi=dpi)
        t2 = time.perf_counter()
        print(f"{name:>15}: compute + figure {t1 - t0:5.2f} s, save PNG {t2 - t1:5.2f} s -> {written[name]}")
    t0 = time.perf_counter()
    view = viz.show_attention(cache, tokens)
    written["html"] = view.save(out / "attention.html")
    print(f"{'html':>15}: {time.perf_counter() - t0:5.2f} s, {written['html'].stat().st_size / 1e6:.2f} MB -> {written['html']}")
    return written


def measure_sizes(model) -> None:
    """The HTML view's size at the full context: the patterns of this model, and synthetic sharp ones."""
    n = model.config.n_ctx
    ids = np.random.default_rng(0).integers(0, model.config.n_vocab - 1, size=n)
    tokens = inspection.token_labels(model, ids)
    t0 = time.perf_counter()
    _, cache = model.run_with_cache(ids)
    print(f"forward pass, {n} tokens: {time.perf_counter() - t0:.1f} s")
    cases = {"this model": cache}
    rng = np.random.default_rng(1)
    c = model.config

    def sharp_layer():  # each query spreads over a handful of keys, with an attention sink at 0
        s = rng.standard_normal((c.n_head, n, n), dtype=np.float32) * np.float32(4.0)
        s[..., 0] += 4.0
        s = np.where(np.tril(np.ones((n, n), bool)), s, np.float32(-np.inf))
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    cases["synthetic sharp"] = [sharp_layer() for _ in range(c.n_layer)]
    for name, patterns in cases.items():
        for layers in (None, [0]):
            t0 = time.perf_counter()
            html = viz.attention_view(patterns, tokens, layers=layers)
            what = f"{c.n_layer} layers" if layers is None else "1 layer"
            print(f"HTML view, {n} tokens, {what} x {c.n_head} heads, {name}: {len(html.encode()) / 1e6:.2f} MB "
                  f"(raw quantised triangle {len(layers or range(c.n_layer)) * c.n_head * n * (n + 1) / 2 / 1e6:.1f} MB), "
                  f"built in {time.perf_counter() - t0:.1f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a model folder or name (default: random gpt2-shaped weights)")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--out", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "npgpt-gallery"))
    ap.add_argument("--layer", type=int, default=5)
    ap.add_argument("--head", type=int, default=1)
    ap.add_argument("--sharpen", type=float, default=4.0)
    ap.add_argument("--dpi", type=int, default=110)
    ap.add_argument("--docs", action="store_true", help="also copy a few PNGs to docs/img/ for the README")
    ap.add_argument("--sizes", action="store_true", help="measure the HTML view at the full context instead")
    args = ap.parse_args(argv)
    model = npgpt.load(args.model) if args.model else random_gpt2(args.sharpen)
    print(f"model: {model!r} ({model.name})")
    if args.sizes:
        measure_sizes(model)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    layer = min(args.layer, model.config.n_layer - 1)
    written = render(model, args.prompt, out, layer, min(args.head, model.config.n_head - 1), args.dpi)
    if args.docs:
        docs = ROOT / "docs" / "img"
        docs.mkdir(parents=True, exist_ok=True)
        for name, file in DOCS.items():
            (docs / file).write_bytes(written[name].read_bytes())
            print(f"copied {written[name]} -> {docs / file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
