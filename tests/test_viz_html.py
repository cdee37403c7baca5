"""The interactive attention view in a real headless browser (Debian's chromium via Playwright).

Network off: the browser context is offline, every request that is not file:, data:, blob: or
about: is aborted and recorded, and the test asserts none was attempted. The page reports what it
drew in ``window.npgptAttention`` (line and cell counts); the expected counts are computed here
from the same quantised patterns. Skipped, with the reason, when chromium or playwright is missing
(CI installs both: see the README).
"""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

import viz

CHROMIUM = os.environ.get("NPGPT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL = ("file:", "data:", "blob:", "about:")

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (never `playwright install`)")
if not os.path.exists(CHROMIUM):
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


def causal_patterns(n_layer, n_head, n, seed, sharpness=3.0):
    """Random causal attention patterns, different per head, sharp enough to look like real ones."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_layer, n_head, n, n)) * sharpness
    scores[..., 0] += 2.0  # some attention to the first token, as GPT-2's heads have
    scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def expected_lines(patterns, layer, head, threshold=viz.html.DEFAULT_THRESHOLD):
    p = patterns[layer].mean(0) if head == "mean" else patterns[layer, head]
    if head == "mean":  # the page averages the quantised heads and rounds
        q = np.floor(viz.html.quantise(patterns[layer]).astype(np.float64).mean(0) + 0.5)
    else:
        q = viz.html.quantise(p)
    return int(np.count_nonzero(q[np.tril_indices(q.shape[0])] >= threshold)), int(np.count_nonzero(q))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A fresh offline page that records requests, console errors and page errors."""

    def __init__(self, browser, width=1100, height=800):
        self.context = browser.new_context(offline=True, viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.requests, self.blocked, self.errors = [], [], []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r):
            if r.request.url.startswith(LOCAL):
                r.continue_()
            else:
                self.blocked.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)

    def open(self, path, frame=None):
        self.page.goto(path.as_uri())
        target = self.page.frames[1] if frame else self.page
        target.wait_for_function("window.npgptAttention && (window.npgptAttention.ready || window.npgptAttention.error)",
                                 timeout=60_000)
        return target

    def stats(self, target=None):
        return (target or self.page).evaluate(
            "(() => { const s = window.npgptAttention; return {ready: s.ready, error: s.error, mode: s.mode, "
            "layer: s.layer, head: s.head, lines: s.lines, cells: s.cells, focus: s.focus, draws: s.draws, ms: s.ms}; })()")

    def canvas_png(self, target=None):
        return (target or self.page).evaluate("document.getElementById('canvas').toDataURL('image/png')")

    def close(self):
        self.context.close()

    def assert_clean(self):
        assert self.blocked == [], f"network requests were attempted: {self.blocked}"
        assert all(u.startswith(LOCAL) for u in self.requests), self.requests
        assert self.errors == [], f"console errors: {self.errors}"


def not_blank(png_bytes):
    from matplotlib.image import imread

    img = imread(io.BytesIO(png_bytes), format="png")[..., :3]
    assert img.std() > 0.02 and (img.min(-1) < 0.9).mean() > 0.01
    return img


def test_view_loads_offline_and_draws_the_expected_lines_and_cells(browser, tmp_path):
    patterns = causal_patterns(3, 4, 40, seed=0)
    tokens = [f" tok{i}" for i in range(40)]
    path = viz.show_attention(patterns, tokens).save(tmp_path / "view.html")
    pg = Page(browser)
    try:
        pg.open(path)
        s = pg.stats()
        assert s["ready"] and s["error"] is None
        assert (s["mode"], s["layer"], s["head"]) == ("lines", 0, 0)
        assert s["lines"] == expected_lines(patterns, 0, 0)[0] > 0
        before = pg.canvas_png()

        # switching layer and head through the controls changes what is drawn
        pg.page.select_option("#layer", "2")
        pg.page.select_option("#head", "3")
        s = pg.stats()
        assert (s["layer"], s["head"]) == (2, 3)
        assert s["lines"] == expected_lines(patterns, 2, 3)[0]
        assert pg.canvas_png() != before
        pg.page.select_option("#head", "-1")
        assert pg.stats()["lines"] == expected_lines(patterns, 2, "mean")[0]

        # heatmap mode: one cell per non-zero quantised weight
        pg.page.check('input[value="heatmap"]')
        s = pg.stats()
        assert s["mode"] == "heatmap" and s["cells"] == expected_lines(patterns, 2, "mean")[1]
        pg.page.select_option("#head", "1")
        assert pg.stats()["cells"] == expected_lines(patterns, 2, 1)[1]
        shot = pg.page.screenshot()
        not_blank(shot)
        (tmp_path / "heatmap.png").write_bytes(shot)
        pg.assert_clean()
    finally:
        pg.close()


def test_hovering_a_token_focuses_its_lines(browser, tmp_path):
    patterns = causal_patterns(1, 2, 30, seed=1)
    path = viz.show_attention(patterns, [f"t{i}" for i in range(30)]).save(tmp_path / "view.html")
    pg = Page(browser)
    try:
        pg.open(path)
        box = pg.page.locator("#canvas").bounding_box()
        row_h, top = 16, 6  # the page's row height and top padding for short texts
        i = 9
        pg.page.mouse.move(box["x"] + 40, box["y"] + top + (i + 0.5) * row_h)
        pg.page.wait_for_function("window.npgptAttention.focus === 'q9'")
        q = viz.html.quantise(patterns[0, 0])
        assert pg.stats()["lines"] == int(np.count_nonzero(q[i, : i + 1]))
        # a key on the right: every query that attends to it
        pg.page.mouse.move(box["x"] + box["width"] - 40, box["y"] + top + (3 + 0.5) * row_h)
        pg.page.wait_for_function("window.npgptAttention.focus === 'k3'")
        assert pg.stats()["lines"] == int(np.count_nonzero(q[3:, 3]))
        pg.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 5)  # the middle: no token
        pg.page.wait_for_function("window.npgptAttention.focus === null")
        not_blank(pg.page.screenshot())
        pg.assert_clean()
    finally:
        pg.close()


def test_full_context_view_stays_responsive(browser, tmp_path):
    """1024 tokens x 2 layers x 4 heads; prints load and redraw times (no timing assertion: the
    machine may be busy), asserts every redraw completes and counts what it should."""
    n = 1024
    patterns = causal_patterns(2, 4, n, seed=2, sharpness=4.0)
    view = viz.show_attention(patterns, [f" w{i}" for i in range(n)])
    path = view.save(tmp_path / "view1024.html")
    pg = Page(browser)
    try:
        pg.open(path)
        timings = {}
        for layer, head, mode in [(0, 1, "lines"), (1, 3, "lines"), (1, -1, "lines"), (0, 2, "heatmap"), (1, -1, "heatmap")]:
            got = pg.page.evaluate(
                f"(() => {{ const t = performance.now(); const r = window.npgptAttention.select({layer}, {head}, '{mode}');"
                " r.ms = performance.now() - t; return r; })()")
            lines, cells = expected_lines(patterns, layer, "mean" if head < 0 else head)
            assert (got["lines"], got["cells"]) == ((lines, 0) if mode == "lines" else (0, cells))
            timings[f"L{layer}H{head} {mode}"] = round(got["ms"], 1)
        pg.page.evaluate("window.npgptAttention.select(0, 0, 'lines')")
        # scroll to token 700 and hover it: the canvas only covers what is visible
        scroll = pg.page.evaluate("(() => { const s = document.getElementById('stage'); s.scrollTop = 700 * 13 - 200; return s.scrollTop; })()")
        pg.page.wait_for_function("window.npgptAttention.draws > 6")  # the scroll redrew
        box = pg.page.locator("#canvas").bounding_box()
        assert box["height"] < 1000  # not 1024 rows tall
        pg.page.mouse.move(box["x"] + 40, box["y"] + 6 + 700.5 * 13 - scroll)
        pg.page.wait_for_function("window.npgptAttention.focus === 'q700'")
        q = viz.html.quantise(patterns[0, 0])
        assert pg.stats()["lines"] == int(np.count_nonzero(q[700, :701]))
        print(f"\n1024-token view: {len(view.html) / 1e6:.2f} MB of HTML; redraw ms {timings}")
        not_blank(pg.page.screenshot())
        pg.assert_clean()
    finally:
        pg.close()


def test_notebook_iframe_runs_sandboxed(browser, tmp_path):
    patterns = causal_patterns(2, 2, 12, seed=3)
    view = viz.show_attention(patterns, [f"<b>{i}</b>" for i in range(12)])
    host = tmp_path / "notebook.html"
    host.write_text(f"<!DOCTYPE html><html><body><h3>a notebook cell</h3>{view._repr_html_()}</body></html>", encoding="utf-8")
    pg = Page(browser)
    try:
        frame = pg.open(host, frame=True)
        s = pg.stats(frame)
        assert s["ready"] and s["lines"] == expected_lines(patterns, 0, 0)[0]
        assert pg.page.evaluate("typeof window.npgptAttention") == "undefined"  # the notebook page is untouched
        frame.select_option("#layer", "1")
        assert pg.stats(frame)["lines"] == expected_lines(patterns, 1, 0)[0]
        not_blank(pg.page.screenshot())
        pg.assert_clean()
    finally:
        pg.close()


def test_model_cache_view(browser, tmp_path):
    """The view built straight from a model's activation cache, with GPT-2 token labels."""
    import npgpt
    from npgpt import inspection

    model = npgpt.random_model(npgpt.PRESETS["gpt2"].replace(n_layer=2, n_embd=64, n_head=4, n_ctx=64), seed=0)
    model.tokenizer = npgpt.Tokenizer.gpt2()
    ids = model.tokenizer.encode("Hello world!\nThe </script> tag & <!-- friends -->")
    _, cache = model.run_with_cache(ids)
    path = viz.show_attention(cache, inspection.token_labels(model, ids)).save(tmp_path / "cache.html")
    pg = Page(browser)
    try:
        pg.open(path)
        patterns = np.stack([cache["pattern", 0], cache["pattern", 1]])
        assert pg.stats()["lines"] == expected_lines(patterns, 0, 0)[0]
        assert pg.page.evaluate("JSON.parse(document.getElementById('npgpt-data').textContent).key_text.join('')") == model.tokenizer.decode(ids)
        pg.assert_clean()
    finally:
        pg.close()


def test_view_from_attention_patterns_decodes_every_layer(browser, tmp_path):
    """``model.attention_patterns`` (the fast path ``npgpt viz html`` uses) into a view of 5 layers:
    5 deflate chunks compressed in parallel, inflated by the browser as one stream."""
    import npgpt

    model = npgpt.random_model(npgpt.PRESETS["gpt2"].replace(n_layer=5, n_embd=64, n_head=4, n_ctx=300), seed=1)
    ids = np.random.default_rng(1).integers(0, model.config.n_vocab, size=300)
    patterns = np.stack(model.attention_patterns(ids))
    path = viz.show_attention(list(patterns), [f" t{i}" for i in range(300)]).save(tmp_path / "fast.html")
    pg = Page(browser)
    try:
        pg.open(path)
        for layer, head in [(0, 0), (2, 3), (4, 1)]:
            got = pg.page.evaluate(f"window.npgptAttention.select({layer}, {head}, 'lines')")
            assert got["lines"] == expected_lines(patterns, layer, head)[0]
        pg.assert_clean()
    finally:
        pg.close()
