"""An interactive attention view as ONE self-contained HTML file: no CDN, no network, no files.

    logits, cache = model.run_with_cache(ids)
    tokens = npgpt.inspection.token_labels(model, ids)
    html = viz.html.attention_view(cache, tokens)          # a whole HTML document, as a string
    view = viz.html.show_attention(cache, tokens)          # the same, displayable in a notebook
    view.save("attention.html")                            # open in any browser, offline
    view                                                   # last line of a notebook cell: shows it

What it shows. "lines" mode: the tokens in two columns, queries on the left, keys on the right,
one line per (query, key) pair whose weight is at least the threshold, darker for more attention.
Hover a token to focus it: on the left, the keys it attends to; on the right, the queries that
attend to it; click to pin the focus. "heatmap" mode: the pattern as an image, queries down and
keys across; hover a cell to read it. Layer and head selectors switch what is drawn; the head
selector also offers the mean of all heads.

How the data travels. Each head's pattern is quantised to one byte per weight
(``round(255 * p)``, error at most 1/510; weights below 1/510 become 0), only the causal lower
triangle is stored (a query's row stops at its own position), all heads are concatenated and
deflate-compressed (``zlib``; one layer per thread, joined into one stream by ``deflate``), then
base64-encoded into a ``<script type="application/json">`` block. The page inflates it with the browser's built-in ``DecompressionStream`` (Chrome 80,
Firefox 113, Safari 16.4 and later; pass ``compress=False`` for older browsers, at several times
the size). A Content-Security-Policy meta tag forbids every network request, so the page is
provably offline. Drawing is on ``<canvas>``, lines grouped into 16 strokes by weight, so a
1024-token view redraws in milliseconds. For notebooks (JupyterLab, VS Code, classic) the page is
placed in an ``<iframe srcdoc=...>`` with ``sandbox="allow-scripts"``, which isolates its script
and styles from the notebook's.

Measured sizes: see ``benchmarks/gallery.py --sizes`` (the README lists them). Pass ``layers=``
to embed only the layers you want to look at.

The page exposes ``window.npgptAttention`` (what was drawn last: mode, layer, head, line and cell
counts) for tests and for scripting.

Leaves out: several heads overlaid in colours (bertviz's "head view"), the neuron view
(query/key vectors), and editing; it reads patterns only.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import os
import zlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from npgpt._files import atomic_write
from npgpt.errors import InputError

from .labels import display_labels

__all__ = ["attention_view", "show_attention", "AttentionView", "quantise", "encode_patterns"]

DEFAULT_THRESHOLD = 3  # quantised units (of 1/255): lines for weights >= ~1.2% are drawn at first
DEFLATE_LEVEL = 4  # not zlib's 6: a 1,024-token view of random gpt2 weights deflates in 0.25 s, not 0.88, for 11% more bytes
QUANTISE_ROWS = 64  # query rows quantised at a time: a 12-head block of 1024 keys is 3 MB of float32


def quantise(pattern: np.ndarray) -> np.ndarray:
    """Attention weights in [0, 1] -> uint8 ``round(255 * p)`` (the view's storage format)."""
    x = np.asarray(pattern, dtype=np.float32) * np.float32(255.0)
    return np.rint(np.clip(x, 0.0, 255.0, out=x), out=x).astype(np.uint8)


def _patterns_of(source, layers) -> tuple[list[np.ndarray], list[int]]:
    """Each chosen layer's [n_head, n_seq, n_kv] pattern (no copies), and the layer indices."""
    if isinstance(source, Mapping):
        n_layer = sum(1 for name in source if str(name).endswith(".attn.pattern"))
        if n_layer == 0:
            raise InputError("the activation cache has no attention patterns; pass model.run_with_cache(ids)[1]")
        get = lambda l: np.asarray(source[f"blocks.{l}.attn.pattern"])  # noqa: E731
    else:
        if isinstance(source, (list, tuple)):
            source = [np.asarray(p) for p in source]
        else:
            source = np.asarray(source)
            if source.ndim == 3:
                source = source[None]
            if source.ndim != 4:
                raise InputError(f"attention patterns must be [n_layer, n_head, n_seq, n_kv], got shape {source.shape}")
        n_layer = len(source)
        get = lambda l: source[l]  # noqa: E731
    chosen = list(range(n_layer)) if layers is None else [int(l) for l in layers]
    bad = [l for l in chosen if not 0 <= l < n_layer]
    if bad or not chosen:
        raise InputError(f"layers must be a non-empty list in 0..{n_layer - 1}, got {layers}")
    patterns = [get(l) for l in chosen]
    shape = patterns[0].shape
    if len(shape) != 3 or any(p.shape != shape for p in patterns):
        raise InputError(
            f"each layer's pattern must be [n_head, n_seq, n_kv] (all the same), got {[p.shape for p in patterns]}; "
            "for a batch, run one sequence (run_with_cache on ids of shape [n_seq])"
        )
    if shape[-1] < shape[-2]:
        raise InputError(f"a pattern has fewer keys ({shape[-1]}) than queries ({shape[-2]})")
    return patterns, chosen


def _triangle(pattern: np.ndarray, rows: int = QUANTISE_ROWS) -> np.ndarray | None:
    """One layer's [n_head, n_seq, n_kv] pattern -> its quantised causal triangle [n_head, n_cells]
    (row i: keys 0..n_past+i), or None when a weight outside the triangle does not quantise to 0.
    ``rows`` query rows at a time, each only as far as its last key: half the work of quantising
    everything, on blocks small enough to stay in the CPU cache."""
    n_head, n_seq, n_kv = pattern.shape
    n_past = n_kv - n_seq
    out = np.empty((n_head, n_seq * n_past + n_seq * (n_seq + 1) // 2), dtype=np.uint8)
    offset = 0
    for start in range(0, n_seq, rows):
        stop = min(start + rows, n_seq)
        seen = n_past + stop  # keys 0 .. seen-1: all any row of this block keeps
        if seen < n_kv and quantise(pattern[:, start:stop, seen:].max(keepdims=True)) > 0:  # quantise is monotonic
            return None
        block = quantise(pattern[:, start:stop, :seen])  # [n_head, stop - start, seen]
        keep = np.tri(stop - start, seen, n_past + start, dtype=bool)  # row r keeps keys 0..n_past+start+r
        if block[:, ~keep].any():
            return None
        cells = block[:, keep]  # [n_head, the block's cells], row by row
        out[:, offset : offset + cells.shape[1]] = cells
        offset += cells.shape[1]
    return out


def _in_threads(function, items) -> list:
    """``[function(x) for x in items]`` on one thread per core: NumPy's loops and zlib run without the GIL."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, min(len(items), os.cpu_count() or 1))) as pool:
        return list(pool.map(function, items))


def deflate(chunks, level: int = DEFLATE_LEVEL) -> bytes:
    """``zlib.compress(b"".join(chunks), level)``'s format, the chunks compressed in parallel threads
    (pigz's scheme): each chunk a run of raw deflate blocks ending on a byte boundary, primed with
    the 32 kB before it so that matches across the cut are still found, the last one final; the
    zlib header before them and the Adler-32 of all the data after. zlib runs without the GIL."""
    chunks = [memoryview(c).cast("B") for c in chunks]

    def one(i: int) -> bytes:
        primer = {"zdict": chunks[i - 1][-32768:]} if i and len(chunks[i - 1]) else {}
        z = zlib.compressobj(level, zlib.DEFLATED, -15, **primer)  # -15: raw deflate, no header
        return z.compress(chunks[i]) + z.flush(zlib.Z_FINISH if i == len(chunks) - 1 else zlib.Z_SYNC_FLUSH)

    body = _in_threads(one, range(len(chunks)))
    check = 1
    for c in chunks:
        check = zlib.adler32(c, check)
    return zlib.compress(b"", level)[:2] + b"".join(body) + check.to_bytes(4, "big")  # the header names the level


def encode_patterns(patterns, compress: bool = True) -> tuple[bytes, bool]:
    """Per-layer [n_head, n_seq, n_kv] patterns -> the bytes the page decodes, and whether only the
    causal triangle was stored. Layout: layer-major, then head, then query rows; row i holds keys
    0..n_past+i (triangular) or all n_kv keys."""
    chunks = _in_threads(_triangle, patterns)  # one layer per thread, [n_head, n_cells] each
    triangular = all(c is not None for c in chunks)
    if not triangular:
        chunks = [quantise(p) for p in patterns]  # [n_head, n_seq, n_kv] each
    if not compress:
        return b"".join(c.tobytes() for c in chunks), triangular
    return deflate([np.ascontiguousarray(c) for c in chunks] or [b""]), triangular


def attention_view(patterns, tokens=None, *, keys=None, layers=None, title: str | None = None,
                   compress: bool = True, height: int = 640, threshold: int = DEFAULT_THRESHOLD) -> str:
    """The interactive attention view as a complete HTML document (a string).

    patterns: an activation cache of one sequence (every layer is embedded, or only ``layers``),
    or an array [n_layer, n_head, n_seq, n_kv] / [n_head, n_seq, n_kv]. tokens: the n_seq query
    tokens (raw strings; spaces and newlines are made visible); keys: the n_kv key tokens, when
    they differ. height: pixels of the scrolling drawing area. threshold: the initial line
    threshold in 1/255 units.
    """
    p, chosen = _patterns_of(patterns, layers)
    n_layer, (n_head, n_seq, n_kv) = len(p), p[0].shape
    if tokens is None:
        tokens = [str(i) for i in range(n_seq)]
    tokens = [str(t) for t in tokens]
    if len(tokens) != n_seq:
        raise InputError(f"{len(tokens)} tokens for patterns over {n_seq} queries; pass one token per query")
    if keys is None:
        if n_kv != n_seq:
            raise InputError(f"the patterns look at {n_kv} keys but {n_seq} tokens were given; pass keys= too")
        keys = tokens
    keys = [str(t) for t in keys]
    if len(keys) != n_kv:
        raise InputError(f"{len(keys)} key tokens for patterns over {n_kv} keys")
    if not 1 <= int(threshold) <= 255:
        raise InputError(f"threshold is in 1/255 units and must be in 1..255, got {threshold}")
    data, triangular = encode_patterns(p, compress)
    payload = {
        "title": title or f"attention — {n_seq} tokens, {n_layer} layer{'s' if n_layer > 1 else ''} x {n_head} heads",
        "layers": chosen,
        "n_head": n_head,
        "n_seq": n_seq,
        "n_kv": n_kv,
        "triangular": triangular,
        "compressed": bool(compress),
        "threshold": int(threshold),
        "keys": display_labels(keys, max_len=24),
        "key_text": keys,
        "data": base64.b64encode(data).decode("ascii"),
    }
    # JSON inside <script>: escape <, >, & so no token text can close the tag or open a comment.
    blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    blob = blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    doc = _TEMPLATE.replace("%TITLE%", html_lib.escape(payload["title"]))
    doc = doc.replace("%HEIGHT%", str(int(height)))
    doc = doc.replace("%SCRIPT%", _SCRIPT)
    return doc.replace("%DATA%", blob)


class AttentionView:
    """An attention view that shows itself in a notebook (``_repr_html_``) and saves as a file."""

    def __init__(self, html: str, height: int = 760):
        self.html = html
        self.height = int(height)

    def _repr_html_(self) -> str:
        # srcdoc keeps the page's script and styles out of the notebook's DOM; allow-scripts
        # without allow-same-origin gives it an opaque origin: it can draw, not touch the notebook.
        return (
            f'<iframe srcdoc="{html_lib.escape(self.html, quote=True)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{self.height}px;border:1px solid #ddd" '
            'title="npgpt attention view"></iframe>'
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the standalone HTML file atomically (temporary file, then rename)."""
        return atomic_write(path, lambda f: f.write(self.html), binary=False)

    def __len__(self) -> int:
        return len(self.html)

    def __repr__(self) -> str:
        return f"<AttentionView: {len(self.html.encode('utf-8')) / 1e6:.2f} MB of HTML; save() it or display it>"


def show_attention(patterns, tokens=None, **options) -> AttentionView:
    """``attention_view`` wrapped for notebooks: display it, or ``.save(path)`` it."""
    height = int(options.get("height", 640))
    return AttentionView(attention_view(patterns, tokens, **options), height=height + 120)


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>%TITLE%</title>
<style>
  body { margin: 0; font: 13px/1.35 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; background: #fff; }
  .npgpt-attn { padding: 8px 10px; }
  .npgpt-attn h1 { font-size: 15px; margin: 0 0 6px; font-weight: 600; }
  .npgpt-attn .bar { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: center; margin-bottom: 4px; }
  .npgpt-attn label { white-space: nowrap; }
  .npgpt-attn select, .npgpt-attn input { font: inherit; }
  .npgpt-attn .help { color: #666; font-size: 12px; margin-bottom: 4px; }
  .npgpt-attn .stage { height: %HEIGHT%px; overflow: auto; border: 1px solid #ddd; position: relative; }
  .npgpt-attn canvas { display: block; position: sticky; top: 0; }
  .npgpt-attn .status { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; min-height: 1.4em; margin-top: 4px; white-space: pre; overflow: hidden; text-overflow: ellipsis; }
</style>
</head>
<body>
<div class="npgpt-attn" id="npgpt-attn">
  <h1 id="title">%TITLE%</h1>
  <div class="bar">
    <label>layer <select id="layer"></select></label>
    <label>head <select id="head"></select></label>
    <label><input type="radio" name="mode" value="lines" checked> lines</label>
    <label><input type="radio" name="mode" value="heatmap"> heatmap</label>
    <label title="lines are drawn for weights at or above this">min weight <input type="range" id="threshold" min="1" max="128" step="1"> <span id="thrval"></span></label>
    <label title="heatmap colour: sqrt(weight) shows small weights"><input type="checkbox" id="sqrt"> sqrt colour</label>
  </div>
  <div class="help" id="help"></div>
  <div class="stage" id="stage"><canvas id="canvas"></canvas><div id="spacer"></div></div>
  <div class="status" id="status">loading…</div>
</div>
<script type="application/json" id="npgpt-data">%DATA%</script>
<script>%SCRIPT%</script>
</body>
</html>
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var tStart = performance.now();
  var D = JSON.parse(document.getElementById("npgpt-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  var stage = $("stage"), canvas = $("canvas"), ctx = canvas.getContext("2d"), statusEl = $("status");
  var nQ = D.n_seq, nK = D.n_kv, past = nK - nQ, nHead = D.n_head;
  var stats = { ready: false, error: null, mode: null, layer: null, head: null, lines: 0, cells: 0,
                focus: null, draws: 0, ms: 0, threshold: D.threshold, startMs: tStart, parseMs: performance.now() - tStart };
  window.npgptAttention = stats;
  var state = { layer: 0, head: 0, mode: "lines", thr: D.threshold, sqrt: false, focus: null, pinned: false };
  var bytes = null, meanCache = {}, hoverCell = null;

  // Row i of a head holds keys 0..past+i (causal triangle) or all nK keys.
  var rowOff = new Float64Array(nQ + 1);
  for (var i = 0; i < nQ; i++) rowOff[i + 1] = rowOff[i] + (D.triangular ? past + i + 1 : nK);
  var headSize = rowOff[nQ];
  function rowLen(i) { return D.triangular ? past + i + 1 : nK; }

  function fmt(v) { return (v / 255).toFixed(3); }
  function label(j) { return D.keys[j]; }
  function qLabel(i) { return D.keys[past + i]; }

  // The selected head's bytes: a view into the data, or the mean of the layer's heads.
  function current() {
    var L = state.layer;
    if (state.head >= 0) {
      var off = (L * nHead + state.head) * headSize;
      return bytes.subarray(off, off + headSize);
    }
    if (!meanCache[L]) {
      var sum = new Float32Array(headSize), base = L * nHead * headSize;
      for (var h = 0; h < nHead; h++) {
        var o = base + h * headSize;
        for (var k = 0; k < headSize; k++) sum[k] += bytes[o + k];
      }
      var m = new Uint8Array(headSize);
      for (var k2 = 0; k2 < headSize; k2++) m[k2] = Math.round(sum[k2] / nHead);
      meanCache[L] = m;
    }
    return meanCache[L];
  }

  // The canvas is only as big as what is visible (it sticks to the top of the scrolling stage;
  // a spacer below it gives the scroll height), so a 1024-token view stays cheap to composite.
  var spacer = $("spacer"), canvasSize = "";
  function setupCanvas(cssW, cssH, contentH) {
    var dpr = Math.min(window.devicePixelRatio || 1, 2);
    var size = cssW + "x" + cssH + "@" + dpr;
    if (size !== canvasSize) {
      canvas.style.width = cssW + "px";
      canvas.style.height = cssH + "px";
      canvas.width = Math.max(1, Math.floor(cssW * dpr));
      canvas.height = Math.max(1, Math.floor(cssH * dpr));
      canvasSize = size;
    }
    spacer.style.height = Math.max(0, (contentH || cssH) - cssH) + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
  }

  // ---- lines mode: queries left, keys right --------------------------------------------------
  var ROW = nK > 400 ? 13 : 16, TOP = 6, geom = null, lineCache = null;
  function linesGeometry() {
    var W = Math.max(stage.clientWidth - 2, 360);
    var labelW = Math.min(170, Math.max(90, W * 0.22));
    return { W: W, H: TOP * 2 + nK * ROW, xL: labelW, xR: W - labelW };
  }
  function yQ(i) { return TOP + (past + i + 0.5) * ROW; }
  function yK(j) { return TOP + (j + 0.5) * ROW; }

  function drawLines() {
    var A = current(), g = linesGeometry(); geom = g;
    var viewH = Math.min(g.H, stage.clientHeight), scroll = Math.min(stage.scrollTop, g.H - viewH);
    setupCanvas(g.W, viewH, g.H);
    ctx.translate(0, -scroll);  // draw in content coordinates; the canvas shows [scroll, scroll + viewH)
    var buckets = [], count = 0, thr = state.thr, f = state.focus, i, j, v, o, n;
    for (var b = 0; b < 16; b++) buckets.push(new Path2D());
    var keyWeight = null, queryWeight = null;
    if (f && f.side === "q") {
      keyWeight = new Uint8Array(nK);
      o = rowOff[f.index]; n = rowLen(f.index);
      for (j = 0; j < n; j++) {
        v = A[o + j]; keyWeight[j] = v;
        if (v >= 1) { buckets[v >> 4].moveTo(g.xL, yQ(f.index)); buckets[v >> 4].lineTo(g.xR, yK(j)); count++; }
      }
    } else if (f && f.side === "k") {
      queryWeight = new Uint8Array(nQ);
      for (i = 0; i < nQ; i++) {
        j = f.index;
        if (j >= rowLen(i)) continue;
        v = A[rowOff[i] + j]; queryWeight[i] = v;
        if (v >= 1) { buckets[v >> 4].moveTo(g.xL, yQ(i)); buckets[v >> 4].lineTo(g.xR, yK(j)); count++; }
      }
    } else if (lineCache && lineCache.key === state.layer + "/" + state.head + "/" + thr + "/" + g.W) {
      buckets = lineCache.buckets; count = lineCache.count;
    } else {
      for (i = 0; i < nQ; i++) {
        o = rowOff[i]; n = rowLen(i);
        var y0 = yQ(i);
        for (j = 0; j < n; j++) {
          v = A[o + j];
          if (v >= thr) { var p = buckets[v >> 4]; p.moveTo(g.xL, y0); p.lineTo(g.xR, yK(j)); count++; }
        }
      }
      lineCache = { key: state.layer + "/" + state.head + "/" + thr + "/" + g.W, buckets: buckets, count: count };
    }
    var color = f ? "232,110,20" : "31,100,180";
    ctx.lineWidth = f ? 1.6 : 1;
    for (b = 0; b < 16; b++) {
      ctx.strokeStyle = "rgba(" + color + "," + ((f ? 0.3 : 0.08) + (f ? 0.7 : 0.92) * (b + 0.5) / 16).toFixed(3) + ")";
      ctx.stroke(buckets[b]);
    }
    // token labels, with the focused token and the weights it sends or receives as backgrounds
    ctx.font = (ROW > 14 ? 12 : 11) + "px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    var top = scroll - ROW, bottom = scroll + viewH + ROW;
    for (i = 0; i < nQ; i++) {
      var y = yQ(i); if (y < top || y > bottom) continue;
      var wq = queryWeight ? queryWeight[i] : 0;
      if (f && f.side === "q" && f.index === i) wq = 255;
      if (wq) { ctx.fillStyle = "rgba(232,110,20," + (wq / 255 * 0.8 + 0.05).toFixed(3) + ")"; ctx.fillRect(4, y - ROW / 2 + 1, g.xL - 10, ROW - 2); }
      ctx.fillStyle = "#222"; ctx.textAlign = "right"; ctx.fillText(qLabel(i), g.xL - 8, y, g.xL - 14);
    }
    for (j = 0; j < nK; j++) {
      var yk = yK(j); if (yk < top || yk > bottom) continue;
      var wk = keyWeight ? keyWeight[j] : 0;
      if (f && f.side === "k" && f.index === j) wk = 255;
      if (wk) { ctx.fillStyle = "rgba(232,110,20," + (wk / 255 * 0.8 + 0.05).toFixed(3) + ")"; ctx.fillRect(g.xR + 6, yk - ROW / 2 + 1, g.W - g.xR - 10, ROW - 2); }
      ctx.fillStyle = "#222"; ctx.textAlign = "left"; ctx.fillText(label(j), g.xR + 8, yk, g.W - g.xR - 14);
    }
    stats.lines = count; stats.cells = 0;
    return count;
  }

  // ---- heatmap mode ----------------------------------------------------------------------------
  // The heatmap image of the selected head, cached: hovering only redraws the overlay.
  var heat = null, off = document.createElement("canvas"), offKey = null, offCells = 0;
  var LUT = [new Uint32Array(256), new Uint32Array(256)];  // weight byte -> RGBA, linear and sqrt
  (function () {
    var little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
    for (var v = 0; v < 256; v++) for (var s = 0; s < 2; s++) {
      var t = s ? Math.sqrt(v / 255) : v / 255;  // white -> dark blue, like matplotlib's "Blues"
      var r = Math.round(247 - 239 * t), g = Math.round(251 - 203 * t), b = Math.round(255 - 148 * t);
      LUT[s][v] = little ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
    }
  })();
  function heatImage(A) {
    var key = state.layer + "/" + state.head + "/" + state.sqrt;
    if (offKey === key) return offCells;
    off.width = nK; off.height = nQ;
    var octx = off.getContext("2d"), img = octx.createImageData(nK, nQ);
    var px = new Uint32Array(img.data.buffer), lut = LUT[state.sqrt ? 1 : 0], cells = 0;
    px.fill(lut[0]);
    for (var i = 0; i < nQ; i++) {
      var o = rowOff[i], n = rowLen(i), base = i * nK;
      for (var j = 0; j < n; j++) { var v = A[o + j]; if (v) { cells++; px[base + j] = lut[v]; } }
    }
    octx.putImageData(img, 0, 0);
    offKey = key; offCells = cells;
    return cells;
  }
  function drawHeatmap() {
    var A = current();
    var avail = Math.max(stage.clientWidth - 2, 300);
    var showLabels = Math.max(nQ, nK) <= 1024;
    var margin = showLabels ? 110 : 10;
    // as large as the stage's height allows, or up to one pixel per token if the width allows (then it scrolls)
    var side = Math.max(120, Math.min(avail - margin - 10, Math.max(stage.clientHeight - margin - 10, Math.max(nQ, nK))));
    var cell = side / Math.max(nQ, nK);
    var W = margin + nK * cell + 10, H = margin + nQ * cell + 10;
    setupCanvas(Math.max(W, avail), H);
    var cells = heatImage(A), i, j;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, margin, margin, nK * cell, nQ * cell);
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1; ctx.strokeRect(margin - 0.5, margin - 0.5, nK * cell + 1, nQ * cell + 1);
    if (showLabels) {  // thinned so labels never overlap: one every `step` rows
      ctx.font = "10px system-ui, sans-serif"; ctx.fillStyle = "#333"; ctx.textBaseline = "middle";
      var step = Math.max(1, Math.ceil(12 / cell));
      ctx.textAlign = "right";
      for (i = 0; i < nQ; i += step) ctx.fillText((step > 1 ? (past + i) + " " : "") + qLabel(i), margin - 4, margin + (i + 0.5) * cell, margin - 8);
      for (j = 0; j < nK; j += step) {
        ctx.save(); ctx.translate(margin + (j + 0.5) * cell, margin - 4); ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left"; ctx.fillText((step > 1 ? j + " " : "") + label(j), 0, 0, margin - 8); ctx.restore();
      }
    }
    if (hoverCell) {
      ctx.strokeStyle = "#e8701a"; ctx.lineWidth = 2;
      ctx.strokeRect(margin + hoverCell.j * cell - 1, margin + hoverCell.i * cell - 1, cell + 2, cell + 2);
    }
    heat = { margin: margin, cell: cell };
    stats.cells = cells; stats.lines = 0;
    return cells;
  }

  // ---- drawing and events ----------------------------------------------------------------------
  var pending = false;
  function draw() {
    if (!bytes) return;
    var t0 = performance.now();
    if (state.mode === "lines") drawLines(); else drawHeatmap();
    stats.ms = performance.now() - t0;
    stats.draws++;
    stats.mode = state.mode; stats.layer = D.layers[state.layer]; stats.head = state.head < 0 ? "mean" : state.head;
    stats.threshold = state.thr; stats.focus = state.focus ? state.focus.side + state.focus.index : null;
    status();
  }
  function redraw() { if (pending) return; pending = true; requestAnimationFrame(function () { pending = false; draw(); }); }
  function status(extra) {
    var what = "layer " + stats.layer + ", head " + stats.head + ": ";
    var text = state.mode === "lines"
      ? what + stats.lines + " lines" + (state.focus ? " (focused token; click to " + (state.pinned ? "unpin" : "pin") + ")" : " with weight ≥ " + fmt(state.thr))
      : what + stats.cells + " non-zero cells of " + (D.triangular ? headSize : nQ * nK);
    statusEl.textContent = extra || text + "   [" + stats.ms.toFixed(1) + " ms]";
  }

  function hitLines(ev) {
    var r = canvas.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top + stage.scrollTop;
    if (!geom) return null;
    var row = Math.floor((y - TOP) / ROW);
    if (x < geom.xL && row >= past && row < nK) return { side: "q", index: row - past };
    if (x > geom.xR && row >= 0 && row < nK) return { side: "k", index: row };
    return null;
  }
  function hitHeat(ev) {
    if (!heat) return null;
    var r = canvas.getBoundingClientRect();
    var j = Math.floor((ev.clientX - r.left - heat.margin) / heat.cell), i = Math.floor((ev.clientY - r.top - heat.margin) / heat.cell);
    return i >= 0 && i < nQ && j >= 0 && j < nK ? { i: i, j: j } : null;
  }
  canvas.addEventListener("mousemove", function (ev) {
    if (!bytes) return;
    if (state.mode === "lines") {
      if (state.pinned) return;
      var h = hitLines(ev), old = state.focus;
      if ((h && (!old || old.side !== h.side || old.index !== h.index)) || (!h && old)) { state.focus = h; redraw(); }
    } else {
      var c = hitHeat(ev);
      if (c && (!hoverCell || c.i !== hoverCell.i || c.j !== hoverCell.j)) {
        hoverCell = c; draw();
        var A = current(), v = c.j < rowLen(c.i) ? A[rowOff[c.i] + c.j] : 0;
        status("query " + (past + c.i) + " " + JSON.stringify(D.key_text[past + c.i]) + " → key " + c.j + " " + JSON.stringify(D.key_text[c.j]) + ": " + fmt(v));
      }
    }
  });
  canvas.addEventListener("mouseleave", function () {
    if (state.mode === "lines" && !state.pinned && state.focus) { state.focus = null; redraw(); }
    if (state.mode === "heatmap" && hoverCell) { hoverCell = null; redraw(); }
  });
  canvas.addEventListener("click", function (ev) {
    if (state.mode !== "lines") return;
    var h = hitLines(ev);
    if (state.pinned && (!h || (state.focus && h.side === state.focus.side && h.index === state.focus.index))) { state.pinned = false; }
    else if (h) { state.focus = h; state.pinned = true; }
    draw();
  });
  stage.addEventListener("scroll", function () { if (state.mode === "lines") redraw(); });
  window.addEventListener("resize", redraw);

  var layerSel = $("layer"), headSel = $("head"), thr = $("threshold");
  D.layers.forEach(function (l, k) { var o = document.createElement("option"); o.value = k; o.textContent = l; layerSel.appendChild(o); });
  for (var h = 0; h < nHead; h++) { var o = document.createElement("option"); o.value = h; o.textContent = h; headSel.appendChild(o); }
  var om = document.createElement("option"); om.value = -1; om.textContent = "mean"; headSel.appendChild(om);
  thr.value = state.thr; $("thrval").textContent = fmt(state.thr);
  layerSel.addEventListener("change", function () { state.layer = +layerSel.value; draw(); });
  headSel.addEventListener("change", function () { state.head = +headSel.value; draw(); });
  thr.addEventListener("input", function () { state.thr = +thr.value; $("thrval").textContent = fmt(state.thr); redraw(); });
  $("sqrt").addEventListener("change", function () { state.sqrt = $("sqrt").checked; draw(); });
  Array.prototype.forEach.call(document.querySelectorAll('input[name="mode"]'), function (r) {
    r.addEventListener("change", function () { state.mode = r.value; state.focus = null; state.pinned = false; hoverCell = null; stage.scrollTop = 0; draw(); });
  });
  $("help").textContent = "Lines: each query token (left) to the tokens it attends to (right); darker = more attention. " +
    "Hover a token to focus it, click to pin. Heatmap: queries down, keys across; hover a cell to read it.";

  // The API for tests and scripts: select(layerIndex, head, mode) redraws synchronously.
  stats.select = function (layerIndex, head, mode) {
    if (layerIndex != null) { state.layer = layerIndex; layerSel.value = layerIndex; }
    if (head != null) { state.head = head; headSel.value = head; }
    if (mode) { state.mode = mode; document.querySelector('input[name="mode"][value="' + mode + '"]').checked = true; }
    state.focus = null; state.pinned = false; hoverCell = null; draw();
    return { lines: stats.lines, cells: stats.cells };
  };

  function decode() {
    var bin = atob(D.data), raw = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) raw[i] = bin.charCodeAt(i);
    if (!D.compressed) return Promise.resolve(raw);
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser has no DecompressionStream; save the view with compress=False"));
    }
    var stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (b) { return new Uint8Array(b); });
  }
  var t0 = performance.now();
  decode().then(function (b) {
    stats.decodeMs = performance.now() - t0;
    var expected = D.layers.length * nHead * headSize;
    if (b.length !== expected) throw new Error("data holds " + b.length + " bytes, expected " + expected);
    bytes = b; stats.ready = true; draw();
  }).catch(function (e) { stats.error = String(e); statusEl.textContent = "cannot show the view: " + e.message; });
})();
"""
