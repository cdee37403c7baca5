"""The pictures of the README and docs/viz.md, drawn from a trained model, and every view of
``viz`` for one prompt, timed; optionally the size of the HTML attention view at 1024 tokens.

    python benchmarks/gallery.py --docs        # docs/img/*.png + gallery.json from the bundled model, docs/img/induction/ from the second
    python benchmarks/gallery.py --out /tmp/gallery                  # every view, the bundled model
    python benchmarks/gallery.py --model gpt2 --out /tmp/gallery     # every view, gpt2 (after npgpt download gpt2)
    python benchmarks/gallery.py --random --out /tmp/gallery         # random gpt2-shaped weights
    python benchmarks/gallery.py --random --sizes                    # HTML size at 1024 tokens, 12 x 12 heads

``--docs`` finds the heads it shows by their scores (``npgpt.inspection``), asserts what the
captions say about them (a previous-token head, induction heads when the model has them, the
logit lens's probability of the right next token growing with depth) and writes the measured
figures to ``docs/img/gallery.json``, which
the README's captions quote and ``tests/test_gallery.py`` checks. ``--random`` weights are of
gpt2's shape with the attention's query/key weights scaled up (``--sharpen``, default 4): they show
how the views look, not what a model learned.
"""

from __future__ import annotations

import argparse
import json
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
HELDOUT = ROOT / "tests" / "data" / "heldout_shakespeare.txt"  # text the bundled model never trained on
# A passage (Richard II, III.2; public domain) that the evidence pictures show twice in a row.
PASSAGE = "Let's talk of graves, of worms, and epitaphs;\nMake dust our paper and with rainy eyes\nWrite sorrow on the bosom of the earth.\n"


def random_gpt2(sharpen: float, n_layer: int = 12):
    model = npgpt.random_model(npgpt.PRESETS["gpt2"].replace(n_layer=n_layer), seed=0)
    if model.tokenizer is None:
        model.tokenizer = npgpt.Tokenizer.gpt2()
    n_embd = model.config.n_embd
    for block in model.params["h"]:  # scale W_Q and W_K (the first 2 * n_embd columns): sharper patterns
        block["attn"]["c_attn"]["weight"][:, : 2 * n_embd] *= np.float32(sharpen)
    model.name = f"random gpt2 weights, attention sharpened x{sharpen:g}"
    return model


def evidence(model, docs: Path, dpi: int) -> dict:
    """The README's pictures, each chosen because it shows something, and the figures behind them.

    Each claim a caption makes is asserted here on the model that drew it. The induction pictures
    (a head on a passage written twice, the copy losses) are drawn only when the model has
    induction heads (a score >= 0.4 and a second copy at most half as costly as the first).
    """
    name = model.name or "model"
    windows = inspection.text_windows(model, HELDOUT.read_text(encoding="utf-8"), n_seq=128, count=8)
    previous = inspection.mean_head_scores(model, windows).previous_token
    prev_head = inspection.best_head(previous)
    probe = inspection.copying_probe(model, length=50, n_probe=4, seed=0)
    ind_head = inspection.best_head(probe.scores.induction)
    copies = bool(probe.scores.induction[ind_head] >= 0.4 and probe.ratio <= 0.5)
    text_ids = windows[0][:48]
    _, text_cache = model.run_with_cache(text_ids)
    lens = inspection.logit_lens(model, text_cache, text_ids, k=1)
    right = np.nanmean(lens.next_probs, axis=1)  # [n_layer + 1]: mean p(the token that does come next)
    # With tied embeddings the embeddings alone predict the input token itself (p near 1, wrong);
    # the probability of the right next token is what grows with depth.
    assert right[-1] > right[len(right) // 2] > right[0], right.round(3)
    l, h = prev_head
    # the caption's "its favourite key for about N% of tokens": how often the previous token wins
    favourite = float(np.mean([np.mean(np.argmax(c[1:], axis=-1) == np.arange(len(c) - 1))
                                for c in (model.run_with_cache(w)[1]["pattern", l][h] for w in windows)]))
    assert favourite > 0.3 and previous[prev_head] == previous.max()
    pattern = text_cache["pattern", l][h]  # [n_seq, n_seq]
    ids = np.asarray(model.tokenizer.encode(PASSAGE * 2))
    _, cache = model.run_with_cache(ids)
    pictures = {
        "previous_token.png": viz.attention_heatmap(pattern[None, :32, :32], inspection.token_labels(model, text_ids[:32]),
                                                    head=0, layer=l, title=f"{name}: layer {l} head {h}, its most previous-token-like head"),
        "grid.png": viz.attention_grid(cache, inspection.token_labels(model, ids), title=f"{name}: every head on a passage written twice"),
        "logit_lens.png": viz.logit_lens_heatmap(lens, max_positions=16),
    }
    findings = {
        "model": name, "config": {"n_layer": model.config.n_layer, "n_head": model.config.n_head},
        "previous_token_head": [l, h], "previous_token_score": round(float(previous[prev_head]), 3),
        "previous_token_favourite": round(favourite, 3),
        "induction_found": copies, "induction_head": list(ind_head),
        "induction_score": round(float(probe.scores.induction[ind_head]), 3),
        "copy_loss": {"first": round(probe.first_copy_loss, 3), "second": round(probe.second_copy_loss, 3),
                      "ratio": round(probe.ratio, 3)},
        "logit_lens_mean_probability_of_next_token": [round(float(x), 3) for x in right],
    }
    if copies:
        strong = [tuple(map(int, x)) for x in np.argwhere(probe.scores.induction >= 0.5 * probe.scores.induction.max())]
        ablated = inspection.copying_probe(model, length=50, n_probe=4, seed=0, hooks=inspection.ablation_hooks(strong))
        assert ablated.second_copy_loss > 2 * probe.second_copy_loss
        findings["induction_heads_ablated"] = [list(x) for x in strong]
        findings["copy_loss"]["second_with_heads_ablated"] = round(ablated.second_copy_loss, 3)
        pictures["induction.png"] = viz.attention_heatmap(cache["pattern", ind_head[0]], inspection.token_labels(model, ids),
                                                          head=ind_head[1], layer=ind_head[0])
        pictures["copying.png"] = viz.copy_losses(probe, ablated=ablated, title=f"{name}: loss on 50 random tokens repeated")
    for file, fig in pictures.items():
        viz.save(fig, docs / file, dpi=dpi)
        print(f"wrote {docs / file}")
    (docs / "gallery.json").write_text(json.dumps(findings, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(findings, indent=1))
    return findings


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
    ap.add_argument("--model", default="shakespeare", help="a model folder or name (default: the bundled shakespeare)")
    ap.add_argument("--random", action="store_true", help="random gpt2-shaped weights instead of --model")
    ap.add_argument("--prompt", default=PROMPT)
    ap.add_argument("--out", default=None, help="draw every view into this folder")
    ap.add_argument("--layer", type=int, default=5)
    ap.add_argument("--head", type=int, default=1)
    ap.add_argument("--sharpen", type=float, default=4.0)
    ap.add_argument("--dpi", type=int, default=110)
    ap.add_argument("--docs", action="store_true", help="redraw docs/img/*.png and docs/img/gallery.json (a trained model)")
    ap.add_argument("--sizes", action="store_true", help="measure the HTML view at the full context instead")
    args = ap.parse_args(argv)
    model = random_gpt2(args.sharpen) if args.random else npgpt.load(args.model)
    print(f"model: {model!r} ({model.name})")
    if args.sizes:
        measure_sizes(model)
        return 0
    if args.docs:
        if args.random:
            ap.error("--docs draws what a trained model learned: leave out --random")
        evidence(model, ROOT / "docs" / "img", args.dpi)
        if args.model == "shakespeare":  # and the second bundled model, the one with an induction head
            second = ROOT / "docs" / "img" / "induction"
            second.mkdir(exist_ok=True)
            evidence(npgpt.load("shakespeare-induction"), second, args.dpi)
    if args.out or not args.docs:
        out = Path(args.out or os.path.join(os.environ.get("TMPDIR", "/tmp"), "npgpt-gallery"))
        out.mkdir(parents=True, exist_ok=True)
        layer = min(args.layer, model.config.n_layer - 1)
        render(model, args.prompt, out, layer, min(args.head, model.config.n_head - 1), args.dpi)
    return 0


if __name__ == "__main__":
    sys.exit(main())
