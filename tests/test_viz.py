"""viz: every static plot rendered (Agg) for a random-weight model and read back; the HTML view's
data format; the `npgpt viz` command.

The checks read what matplotlib will draw (artists' data, tick labels, texts) and the files it
writes (they decode, they are not blank). The browser test of the HTML view is test_viz_html.py.
"""

from __future__ import annotations

import base64
import json
import os
import re
import xml.etree.ElementTree as ET
import zlib

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.image import imread  # noqa: E402

import npgpt  # noqa: E402
import npgpt.cli  # noqa: E402
import viz  # noqa: E402
from npgpt import inspection  # noqa: E402
from npgpt.errors import InputError  # noqa: E402

TEXT = 'The cat sat on the mat.\nThe cat said: "$5 for\tthe mat", 日本 🎉'


@pytest.fixture(scope="session")
def model():
    """GPT-2's vocabulary and context, tiny otherwise: real token labels, fast forward passes."""
    m = npgpt.random_model(npgpt.PRESETS["gpt2"].replace(n_layer=2, n_embd=64, n_head=4, n_ctx=1024), seed=0)
    m.tokenizer = npgpt.Tokenizer.gpt2()
    for block in m.params["h"]:  # sharper attention than the init gives, so the heads differ
        block["attn"]["c_attn"]["weight"] *= np.float32(6.0)
    return m


@pytest.fixture(scope="session")
def short(model):
    ids = np.array(model.tokenizer.encode(TEXT))
    logits, cache = model.run_with_cache(ids)
    return ids, inspection.token_labels(model, ids), logits, cache


@pytest.fixture(scope="session")
def long(model):
    ids = np.random.default_rng(0).integers(0, 50256, size=1024)
    _, cache = model.run_with_cache(ids)
    return ids, inspection.token_labels(model, ids), cache


def check_png(path):
    """The file decodes as an image with real content: not one flat colour, not almost all white."""
    img = imread(path)
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    rgb = img[..., :3]
    assert rgb.std() > 0.02
    assert (rgb.min(axis=-1) < 0.9).mean() > 0.01  # at least 1% of pixels are not near-white
    return img


def tick_texts(labels):
    return [t.get_text() for t in labels]


def no_overlap(fig, labels):
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = [t.get_window_extent(renderer) for t in labels if t.get_text()]
    for a, b in zip(boxes, boxes[1:]):
        assert not a.overlaps(b), "tick labels overlap"
    return len(boxes)


# ---- labels --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, shown", [
    (" the", "·the"), ("\n", "⏎"), ("\n\n", "⏎⏎"), ("\t", "⇥"), ("\x00", "\\x00"), ("\r", "\\x0d"),
    ("", "∅"), ("\ufffd", "\ufffd"), ("$5", "$5"), ("a" * 40, "a" * 15 + "…"), ("\u200b", "\\u200b"),
])
def test_token_labels_are_visible_and_short(raw, shown):
    assert viz.token_label(raw) == shown


def test_font_fallback_escapes_characters_the_plot_font_lacks():
    assert viz.token_label("日本", for_font=True) == "\\u65e5\\u672c"
    assert viz.token_label("日本") == "日本"  # the HTML view keeps them: browsers have fallback fonts
    assert viz.token_label(" café", for_font=True) == "·café"


# ---- attention ---------------------------------------------------------------------------------


def test_attention_heatmap_cells_ticks_and_causal_structure(short, tmp_path):
    ids, tokens, _, cache = short
    fig = viz.attention_heatmap(cache["pattern", 1], tokens, head=2, layer=1)
    ax = fig.axes[0]
    data = np.asarray(ax.images[0].get_array())
    np.testing.assert_array_equal(data, cache["pattern", 1][2])
    assert np.all(data[np.triu_indices(len(ids), 1)] == 0)  # the future is masked: upper triangle zero
    assert np.all(data[np.tril_indices(len(ids))] > 0)
    assert tick_texts(ax.get_xticklabels()) == viz.display_labels(tokens, for_font=True)
    assert tick_texts(ax.get_yticklabels()) == viz.display_labels(tokens, for_font=True)
    assert "·cat" in tick_texts(ax.get_xticklabels()) and "⏎" in tick_texts(ax.get_xticklabels())
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    for suffix in ("png", "svg", "pdf"):
        path = viz.save(fig, tmp_path / f"attn.{suffix}")
        assert path.stat().st_size > 1000
    check_png(tmp_path / "attn.png")
    ET.parse(tmp_path / "attn.svg")  # well-formed XML
    assert (tmp_path / "attn.pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attn.pdf", "attn.png", "attn.svg"]  # no temp files left
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "attn.png").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_attention_heatmap_at_full_context_thins_labels_without_overlap(long, tmp_path):
    ids, tokens, cache = long
    fig = viz.attention_heatmap(cache["pattern", 0], tokens, head=1, layer=0)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), cache["pattern", 0][1])
    xs, ys = ax.get_xticklabels(), ax.get_yticklabels()
    assert 20 <= len(xs) <= 120 and len(xs) == len(ys)
    step = int(ax.get_xticks()[1] - ax.get_xticks()[0])
    assert all(t.get_text().startswith(f"{i * step} ") for i, t in enumerate(xs))  # thinned labels carry their position
    ax.images[0].set_visible(False)  # label extents do not depend on the image: skip resampling it
    assert no_overlap(fig, xs) == len(xs) and no_overlap(fig, ys) == len(ys)


def test_attention_grid_has_one_thumbnail_per_head(short, tmp_path):
    ids, tokens, _, cache = short
    fig = viz.attention_grid(cache, tokens)
    thumbs = [ax for ax in fig.axes if ax.get_label().startswith("L")]
    assert len(thumbs) == 2 * 4 and len(fig.axes) == 2 * 4 + 1  # + the colour bar
    for ax in thumbs:
        l, h = map(int, re.fullmatch(r"L(\d+)H(\d+)", ax.get_label()).groups())
        np.testing.assert_array_equal(ax.images[0].get_array(), cache["pattern", l][h])
    assert [ax.get_title() for ax in thumbs[:4]] == ["H0", "H1", "H2", "H3"]
    check_png(viz.save(fig, tmp_path / "grid.png"))
    np.testing.assert_array_equal(viz.layer_patterns(cache), np.stack([cache["pattern", 0], cache["pattern", 1]]))


def test_head_heatmaps_entropy_and_scores(short, tmp_path):
    ids, tokens, _, cache = short
    scores = inspection.head_scores(cache, ids)
    fig = viz.entropy_heatmap(scores.entropy, n_seq=len(ids))
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), scores.entropy)
    assert tick_texts(ax.get_xticklabels()) == ["0", "1", "2", "3"] and tick_texts(ax.get_yticklabels()) == ["0", "1"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.2f}" for v in scores.entropy.ravel())
    check_png(viz.save(fig, tmp_path / "entropy.png"))
    fig = viz.head_heatmap(scores.induction, title="induction", diverging=True)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), scores.induction)


def test_attention_flow_draws_the_rollout(short, tmp_path):
    ids, tokens, _, cache = short
    flow = inspection.attention_flow(cache, position=10)
    fig = viz.attention_flow_graph(flow, tokens)
    ax = fig.axes[0]
    points = ax.collections[-1].get_offsets()
    assert len(points) == 3 * 11  # (n_layer + 1) rows x the 11 positions up to the chosen one
    assert len(ax.collections[0].get_segments()) > 0
    assert tick_texts(ax.get_xticklabels()) == viz.display_labels(tokens[:11], for_font=True)
    assert tick_texts(ax.get_yticklabels()) == ["embed", "after L0", "after L1"]
    check_png(viz.save(fig, tmp_path / "flow.png"))


# ---- residual stream, MLP, predictions -----------------------------------------------------


def test_residual_norms_plot(short, tmp_path):
    ids, tokens, _, cache = short
    norms = inspection.residual_norms(cache)
    fig = viz.residual_norm_heatmap(norms, tokens)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), norms)
    assert len(fig.axes[0].get_xticklabels()) == len(ids)
    check_png(viz.save(fig, tmp_path / "resid.png"))


def test_mlp_activations_show_the_top_neurons(short, tmp_path):
    ids, tokens, _, cache = short
    post = cache["post", 1]
    fig = viz.mlp_activations(post, tokens, layer=1, top=12)
    ax = fig.axes[0]
    top = np.argsort(-post.max(axis=0), kind="stable")[:12]
    np.testing.assert_array_equal(ax.images[0].get_array(), post[:, top].astype(np.float64))
    assert tick_texts(ax.get_xticklabels()) == [str(n) for n in top]
    assert len(ax.get_yticklabels()) == len(ids)
    check_png(viz.save(fig, tmp_path / "mlp.png"))
    chosen = viz.mlp_activations(post, tokens, neurons=[3, 1])
    np.testing.assert_array_equal(chosen.axes[0].images[0].get_array(), post[:, [3, 1]].astype(np.float64))


def test_logit_lens_table_writes_the_top_token_in_each_cell(model, short, tmp_path):
    ids, tokens, _, cache = short
    lens = inspection.logit_lens(model, cache, ids, k=3)
    fig = viz.logit_lens_heatmap(lens, max_positions=8)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), lens.top_probs[:, -8:, 0])
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 3 * 8
    expected = [viz.token_label(lens.top_tokens[r][c][0], for_font=True, max_len=10) for r in range(3) for c in range(len(ids) - 8, len(ids))]
    assert texts == expected
    assert tick_texts(ax.get_yticklabels()) == ["embed", "L0", "L1"]
    check_png(viz.save(fig, tmp_path / "lens.png"))


def test_next_token_distribution_bars(tmp_path):
    fig = viz.next_token_distribution([" Paris", " London", " the"], [0.2, 0.7, 0.1], chosen=" Paris")
    ax = fig.axes[0]
    heights = [p.get_width() for p in ax.patches]
    assert heights == [0.7, 0.2, 0.1]  # sorted, likeliest on top
    assert tick_texts(ax.get_yticklabels()) == ["·London", "·Paris", "·the"]
    assert ax.patches[1].get_facecolor() != ax.patches[0].get_facecolor()  # the chosen token stands out
    check_png(viz.save(fig, tmp_path / "next.png"))
    with pytest.raises(InputError, match="one probability per token"):
        viz.next_token_distribution(["a", "b"], [1.0])


def test_next_token_distribution_reads_a_generation_trace_step(model):
    generate = pytest.importorskip("npgpt.generate")
    result = generate.generate_ids(model, "The cat", max_new_tokens=2, trace=True, trace_top_k=4, seed=0)
    step = result.completions[0].steps[1] if hasattr(result, "completions") else result[0].steps[1]
    fig = viz.next_token_distribution(step)
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    np.testing.assert_allclose(sorted((p.get_width() for p in ax.patches), reverse=True), [t.prob for t in step.top])


def test_positional_embedding_and_its_principal_components(model, tmp_path):
    wpe = inspection.positional_embedding(model)[:256]
    fig = viz.positional_embedding_plot(wpe, n_components=3)
    matrix, curves, plane = fig.axes[0], fig.axes[2], fig.axes[3]
    np.testing.assert_array_equal(matrix.images[0].get_array(), wpe.astype(np.float64))
    assert len(curves.lines) == 3 and len(curves.lines[0].get_xdata()) == 256
    assert len(plane.collections[0].get_offsets()) == 256
    # PC1 is the direction of largest variance: its curve's variance is the largest singular value^2 / n
    s = np.linalg.svd(wpe - wpe.mean(0), compute_uv=False)
    assert np.var(curves.lines[0].get_ydata()) == pytest.approx(s[0] ** 2 / 256, rel=1e-6)
    check_png(viz.save(fig, tmp_path / "wpe.png", dpi=60))


def test_logit_attribution_plot(model, short, tmp_path):
    ids, tokens, _, cache = short
    dla = inspection.direct_logit_attribution(model, cache)
    fig = viz.logit_attribution(dla)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), dla.heads)
    bars = fig.axes[2]
    assert [p.get_width() for p in bars.patches][:2] == list(dla.mlp)
    check_png(viz.save(fig, tmp_path / "dla.png"))


def test_plot_input_errors(short, tmp_path):
    ids, tokens, _, cache = short
    with pytest.raises(InputError, match="say which with head="):
        viz.attention_heatmap(cache["pattern", 0], tokens)
    with pytest.raises(InputError, match="labels for"):
        viz.attention_heatmap(cache["pattern", 0], tokens[:-1], head=0)
    with pytest.raises(InputError, match=r"\.png, \.svg, \.pdf"):
        viz.save(viz.next_token_distribution(["a"], [1.0]), tmp_path / "x.jpg")
    with pytest.raises(InputError, match="does not exist"):
        viz.save(viz.next_token_distribution(["a"], [1.0]), tmp_path / "missing" / "x.png")
    with pytest.raises(InputError, match="n_layer, n_head, n_seq, n_kv"):
        viz.attention_grid(np.zeros((3, 3)))


# ---- the HTML view, without a browser ----------------------------------------------------------


def _payload(html):
    blob = re.search(r'<script type="application/json" id="npgpt-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(blob)


def test_html_view_embeds_the_quantised_causal_triangle(short):
    ids, tokens, _, cache = short
    html = viz.attention_view(cache, tokens)
    assert html.startswith("<!DOCTYPE html>") and "default-src 'none'" in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)  # nothing loaded from anywhere
    data = _payload(html)
    n = len(ids)
    assert (data["n_seq"], data["n_kv"], data["n_head"], data["layers"]) == (n, n, 4, [0, 1])
    assert data["triangular"] and data["compressed"]
    raw = np.frombuffer(zlib.decompress(base64.b64decode(data["data"])), dtype=np.uint8)
    rows, cols = np.tril_indices(n)
    expected = np.concatenate([viz.html.quantise(cache["pattern", l][h])[rows, cols] for l in range(2) for h in range(4)])
    np.testing.assert_array_equal(raw, expected)
    assert data["key_text"] == tokens and data["keys"][1] == "·cat"
    one = _payload(viz.attention_view(cache, tokens, layers=[1], compress=False))
    assert one["layers"] == [1] and len(base64.b64decode(one["data"])) == 4 * n * (n + 1) // 2


def _encoded_plainly(patterns):
    """What ``encode_patterns(patterns, compress=False)`` must return: every cell quantised, then the
    causal triangle gathered when nothing outside it quantises to a non-zero byte."""
    n_head, n_seq, n_kv = patterns[0].shape
    rows, cols = np.tril_indices(n_seq, k=n_kv - n_seq, m=n_kv)
    q = [viz.html.quantise(p) for p in patterns]
    triangular = all(np.array_equal(x[:, rows, cols].sum(-1, dtype=np.int64), x.sum((1, 2), dtype=np.int64)) for x in q)
    return b"".join((x[:, rows, cols] if triangular else x).tobytes() for x in q), triangular


@pytest.mark.parametrize("n_seq, n_past, rows", [(1, 0, 64), (70, 0, 64), (130, 0, 64), (50, 9, 16), (33, 0, 1)])
def test_encoded_patterns_equal_the_plain_encoding(n_seq, n_past, rows, monkeypatch):
    """Blocked quantisation and parallel deflate give the bytes of the plain computation, for
    triangles, a cached past, a weight just above and just below the quantisation's 0 outside
    the triangle, and several layers (each one deflate chunk)."""
    monkeypatch.setattr(viz.html, "QUANTISE_ROWS", rows)
    rng = np.random.default_rng(n_seq + n_past)
    n_kv = n_seq + n_past
    s = rng.standard_normal((3, 4, n_seq, n_kv)).astype(np.float32) * 3
    s = np.where(np.tri(n_seq, n_kv, n_past, dtype=bool), s, -np.inf)
    patterns = np.exp(s - s.max(-1, keepdims=True))
    patterns /= patterns.sum(-1, keepdims=True)
    cases = [list(patterns)]
    if n_seq > 1:
        for weight in (np.float32(0.5 / 255), np.float32(0.51 / 255)):  # rint(0.5) is 0: still triangular
            leaked = patterns.copy()
            leaked[2, 1, n_seq // 2, -1] = weight
            cases.append(list(leaked))
    for case in cases:
        expected, triangular = _encoded_plainly(case)
        assert viz.html.encode_patterns(case, compress=False) == (expected, triangular)
        data, flag = viz.html.encode_patterns(case)
        assert flag == triangular and zlib.decompress(data) == expected
    assert [_encoded_plainly(c)[1] for c in cases] == [True, True, False][: len(cases)]


def test_deflate_is_one_zlib_stream():
    rng = np.random.default_rng(0)
    chunks = [rng.integers(0, 4, 100_000, dtype=np.uint8), b"", bytes(70_000), b"abc" * 20_000, rng.bytes(5)]
    for parts in (chunks, chunks[:1], [b""], chunks[1:3]):
        data = viz.html.deflate(parts)
        assert zlib.decompress(data) == b"".join(bytes(p) for p in parts)
        d = zlib.decompressobj()
        d.decompress(data)
        assert d.eof and not d.unused_data  # one stream, nothing after it
        assert data[:2] == zlib.compress(b"", viz.html.DEFLATE_LEVEL)[:2] == b"\x78\x5e"  # zlib's header for levels 2-5
    whole = b"".join(bytes(p) for p in chunks)
    level = viz.html.DEFLATE_LEVEL
    assert len(viz.html.deflate(chunks)) <= 1.02 * len(zlib.compress(whole, level)) + 64  # the cuts cost next to nothing


def test_html_view_token_text_cannot_break_out_of_the_page():
    p = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    html = viz.attention_view(p[None, None], ["</script><script>alert(1)</script>", "<!--", "&amp;"])
    assert html.count("</script>") == 2  # only the page's own two script blocks close
    assert "<!--" not in html
    assert _payload(html)["key_text"][0] == "</script><script>alert(1)</script>"


def test_notebook_repr_and_save(short, tmp_path):
    ids, tokens, _, cache = short
    view = viz.show_attention(cache, tokens)
    frame = view._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame
    assert "<script" not in frame  # all markup is escaped inside srcdoc
    path = view.save(tmp_path / "view.html")
    assert path.read_text(encoding="utf-8") == view.html
    assert [p.name for p in tmp_path.iterdir()] == ["view.html"]


def test_html_view_input_errors(short):
    ids, tokens, _, cache = short
    with pytest.raises(InputError, match="one token per query"):
        viz.attention_view(cache, tokens[:-1])
    with pytest.raises(InputError, match="layers must be"):
        viz.attention_view(cache, tokens, layers=[5])
    with pytest.raises(InputError, match="1..255"):
        viz.attention_view(cache, tokens, threshold=0)


# ---- the command line ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_folder(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("viz-model") / "tiny-gpt2"
    npgpt.save(model, folder)
    return folder


@pytest.fixture
def cli(monkeypatch):
    if "viz" not in npgpt.cli.COMMANDS:
        monkeypatch.setattr(npgpt.cli, "COMMANDS", npgpt.cli.COMMANDS + ["viz"])
    return npgpt.cli.main


@pytest.mark.parametrize("view, extra, suffix", [
    ("attention", ["--layer", "1", "--head", "3"], "png"),
    ("grid", [], "svg"),
    ("logit-lens", [], "png"),
    ("activations", ["--layer", "-1"], "pdf"),
    ("residual", [], "png"),
    ("entropy", [], "png"),
    ("scores", ["--score", "induction"], "png"),
    ("flow", ["--position", "5"], "png"),
    ("attribution", ["--target", " mat"], "png"),
    ("ablation", ["--target", "2603"], "png"),
    ("next-token", ["--k", "5"], "png"),
    ("positions", [], "png"),
    ("html", [], "html"),
])
def test_cli_views(cli, model_folder, tmp_path, view, extra, suffix, capsys):
    out = tmp_path / f"out.{suffix}"
    text = [] if view == "positions" else ["The cat sat on the mat. The cat sat on the"]
    assert cli(["viz", view, *text, "--model", str(model_folder), "-o", str(out), "--dpi", "40", *extra]) == 0
    assert out.stat().st_size > 1000
    assert f"wrote {out}" in capsys.readouterr().err
    if suffix == "png":
        check_png(out)
    elif suffix == "html":
        assert _payload(out.read_text(encoding="utf-8"))["n_head"] == 4


@pytest.mark.parametrize("argv, message", [
    (["viz", "attention", "hi", "-o", "x.jpg"], "end --output with .png"),
    (["viz", "html", "hi", "-o", "x.png"], "end --output with .html"),
    (["viz", "attention", "hi", "--layer", "7", "-o", "x.png"], "--layer 7 does not exist"),
    (["viz", "attention", "hi", "--head", "4", "-o", "x.png"], "--head 4 does not exist"),
    (["viz", "grid", "-o", "x.png"], "needs a text"),
    (["viz", "attribution", "hi", "--target", " Parisienne", "-o", "x.png"], "is 2 tokens"),
    (["viz", "scores", "abc", "--score", "induction", "-o", "x.png"], "no token repeats"),
])
def test_cli_errors_are_one_clear_line(cli, model_folder, tmp_path, monkeypatch, argv, message, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli(argv + ["--model", str(model_folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npgpt: error: ") and message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_old_names_warn_and_still_draw():
    # viz's drawing functions no longer share names with npgpt.inspection's computing ones.
    import npgpt.inspection

    for old, new in viz.RENAMED.items():
        with pytest.warns(DeprecationWarning, match=f"viz.{new}"):
            assert getattr(viz, old) is getattr(viz, new)
    assert not (set(viz.__all__) & set(npgpt.inspection.__all__))


def test_block_diagram_draws_every_block_activation_with_the_cache_shape(model):
    from npgpt.activations import ACTIVATIONS

    ids = model.tokenizer.encode("The cat sat on the mat.")
    _, cache = model.run_with_cache(ids)
    rows = viz.block_shapes(cache, -1)
    assert [name for name, _, _ in rows] == [t.replace("{l}", "1") for t in ACTIVATIONS if t.startswith("blocks.{l}.")]
    q = dict((name, shape) for name, shape, _ in rows)["blocks.1.attn.q"]
    assert q == f"[n_head={model.config.n_head}, n_seq={len(ids)}, d_head={model.config.d_head}]"
    fig = viz.block_diagram(cache, 1)
    FigureCanvasAgg(fig).draw()
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert all(shape.replace(", n_seq", ",\nn_seq") in texts or shape in texts for _, shape, _ in rows)
    assert "to ln_final" in texts and "from blocks.0.resid_post" in texts
    assert isinstance(fig._repr_png_(), bytes)
    with pytest.raises(InputError, match="out of range"):
        viz.block_shapes(cache, 5)
    with pytest.raises(InputError, match="run_with_cache"):
        viz.block_diagram({"logits": np.zeros((3, 4))})
