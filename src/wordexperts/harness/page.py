"""Interactive pages of the explanations: one self-contained HTML file each (``--html``).

:func:`explain_page` (``wordexperts explain --html``) shows a checkpoint at the masked
position: every layer's and head's gates over the tokens (pick a layer and a head, in the
selectors or the layers x heads grid; hover or click a token for its gate, its layer-1
expert's norm and its share), a heatmap of the chosen layer's heads, and the layer-1
experts' contributions. :func:`table_page` (``wordexperts explain-table --html``) shows,
for each explained row of a table, every column's gate and contribution to the predicted
class beside the column's global importance and its gate shift against a reference.

Each page is one file: the style sheet, the script and the data (the same numbers as
``explain.json`` / the CSVs) are inline, and a Content-Security-Policy meta tag lets the
page load nothing at all (``default-src 'none'``; the inline script and style are allowed
by their SHA-256 hashes), so opening it makes no request. The view is in the URL fragment
(``#view=gates&layer=2&head=5&token=7``, ``#row=3&sort=importance``), which a reader can
bookmark and the browser tests use. Sized for 512-token sentences and 100-column tables:
the tokens wrap as text, the heatmap is one canvas, nothing is drawn per (layer, head, token).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import uuid
from pathlib import Path
from typing import Any

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #1d232a; }
h1 { font-size: 18px; margin: 0 0 4px; }
.meta { color: #56606b; margin: 2px 0; overflow-wrap: anywhere; }
nav { margin: 12px 0; }
nav button { font: inherit; padding: 4px 12px; border: 1px solid #9aa5b1; background: #fff;
  cursor: pointer; }
nav button.active { background: #1d4f91; color: #fff; border-color: #1d4f91; }
.hidden { display: none; }
.controls { margin: 8px 0; }
.controls label { margin-right: 16px; }
.panel { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
table { border-collapse: collapse; }
td, th { padding: 2px 6px; text-align: right; font-variant-numeric: tabular-nums; }
th { font-weight: 600; color: #56606b; }
td.name, th.name { text-align: left; max-width: 260px; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
#grid td { width: 34px; cursor: pointer; border: 1px solid #fff; font-size: 11px; }
#grid td.selected { outline: 2px solid #d62728; }
#tokens { line-height: 2.1; margin: 8px 0; max-height: 420px; overflow-y: auto; }
.tok { padding: 2px 3px; margin: 1px; border-radius: 3px; cursor: pointer;
  border: 1px solid transparent; white-space: pre; }
.tok.mask { border-color: #d62728; font-weight: 700; }
.tok.pinned { outline: 2px solid #111; }
#info { min-width: 280px; border: 1px solid #ccd3da; padding: 8px 12px; }
#info dt { color: #56606b; float: left; clear: left; width: 150px; }
#info dd { margin: 0 0 2px 150px; font-variant-numeric: tabular-nums; }
canvas { border: 1px solid #ccd3da; image-rendering: pixelated; max-width: 100%; }
.bar { position: relative; width: 160px; height: 12px; background: #f1f3f5; }
.bar div { position: absolute; top: 0; height: 12px; }
.bar .zero { left: 50%; width: 1px; background: #56606b; }
.pos { background: #1d4f91; } .neg { background: #d62728; } .mix { background: #7f7f7f; }
tr.maskrow td { color: #d62728; font-weight: 600; }
tbody tr:hover { background: #eef2f6; }
.note { color: #56606b; font-size: 12px; max-width: 900px; }
#violations { color: #d62728; }
"""

COMMON_SCRIPT = """
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const $ = (id) => document.getElementById(id);
const violations = $("violations");
document.addEventListener("securitypolicyviolation", (e) => {
  violations.dataset.count = String(Number(violations.dataset.count) + 1);
  violations.textContent = "blocked request: " + e.blockedURI;
});
function el(tag, parent, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (cls) node.className = cls;
  if (parent) parent.appendChild(node);
  return node;
}
function fmt(x, digits) {  // fixed digits; small nonzero values in scientific notation
  if (!Number.isFinite(x)) return "";
  const d = digits === undefined ? 4 : digits;
  return x !== 0 && Math.abs(x) < Math.pow(10, -d) ? x.toExponential(2) : x.toFixed(d);
}
function value(node, x, digits) {  // shown rounded, kept exactly in data-value
  if (x === null || x === undefined) return;  // what the column has not: left empty
  node.dataset.value = String(x);
  node.textContent = fmt(x, digits);
}
function hashParams() { return new URLSearchParams(location.hash.slice(1)); }
function setHash(state) { history.replaceState(null, "", "#" + new URLSearchParams(state)); }
function shade(g) {  // gate in [0, 1] -> white .. dark blue, square-root scale
  const t = Math.sqrt(Math.max(0, Math.min(1, g)));
  return "rgb(" + Math.round(255 - 226 * t) + "," + Math.round(255 - 176 * t) + "," +
    Math.round(255 - 110 * t) + ")";
}
function ink(g) { return Math.sqrt(g) > 0.6 ? "#fff" : "#1d232a"; }
function signedBar(parent, x, scale) {  // a bar from the centre line, right if positive
  const bar = el("div", parent, null, "bar");
  const frac = scale > 0 ? Math.min(1, Math.abs(x) / scale) / 2 : 0;
  const fill = el("div", bar, null, x >= 0 ? "pos" : "neg");
  fill.style.left = (x >= 0 ? 50 : 50 - 100 * frac) + "%";
  fill.style.width = 100 * frac + "%";
  el("div", bar, null, "zero");
  return bar;
}
"""

EXPLAIN_SCRIPT = """
const D = DATA, L = D.tokens.length, H = D.n_heads, NL = D.n_layers;
const E = D.layer1_experts;
const state = { view: "gates", layer: 1, head: 1, token: -1 };
const gates = (layer, head) => D.layers[layer - 1].heads[head - 1].gates;

function readHash() {
  const p = hashParams();
  const int = (name, lo, hi, fallback) => {
    const v = parseInt(p.get(name), 10);
    return Number.isInteger(v) && v >= lo && v <= hi ? v : fallback;
  };
  state.view = p.get("view") === "experts" ? "experts" : "gates";
  state.layer = int("layer", 1, NL, 1);
  state.head = int("head", 1, H, 1);
  state.token = int("token", 0, L - 1, -1);
}

function build() {
  $("title").textContent = D.encoder + " at " + D.tokens[D.mask_position] + ": gates and experts";
  $("sentence").textContent = D.sentence;
  $("checkpoint").textContent = D.checkpoint + " (" + D.encoder + ", " + NL + " layers x " + H +
    " heads, " + L + " tokens, mask at position " + D.mask_position + ")";
  for (const name of ["gates", "experts"]) {
    $("tab-" + name).addEventListener("click", () => { state.view = name; render(); });
  }
  for (let l = 1; l <= NL; l++) el("option", $("layer"), "layer " + l).value = l;
  for (let h = 1; h <= H; h++) el("option", $("head"), "head " + h).value = h;
  $("layer").addEventListener("change", (e) => { state.layer = +e.target.value; render(); });
  $("head").addEventListener("change", (e) => { state.head = +e.target.value; render(); });
  const head = el("tr", el("thead", $("grid")));
  el("th", head, "layer / head");
  for (let h = 1; h <= H; h++) el("th", head, String(h));
  const body = el("tbody", $("grid"));
  for (let l = 1; l <= NL; l++) {
    const row = el("tr", body);
    el("th", row, String(l));
    for (let h = 1; h <= H; h++) {
      const eff = D.layers[l - 1].heads[h - 1].effective_experts;
      const cell = el("td", row);
      cell.id = "cell-" + l + "-" + h;
      value(cell, eff, 1);
      cell.title = "layer " + l + ", head " + h + ": " + fmt(eff, 2) + " effective experts";
      cell.style.backgroundColor = shade(1 - (eff - 1) / Math.max(1, L - 1));
      cell.style.color = ink(1 - (eff - 1) / Math.max(1, L - 1));
      cell.addEventListener("click", () => { state.layer = l; state.head = h; render(); });
    }
  }
  const strip = $("tokens");
  D.tokens.forEach((t, j) => {
    const span = el("span", strip, t, j === D.mask_position ? "tok mask" : "tok");
    span.dataset.j = String(j);
    span.addEventListener("mouseenter", () => { state.token = j; renderInfo(); });
    span.addEventListener("click", () => { state.token = j; renderInfo(); });
    strip.appendChild(document.createTextNode(" "));
  });
  const canvas = $("heat");
  canvas.addEventListener("click", (e) => {
    const box = canvas.getBoundingClientRect();
    state.head = Math.min(H, 1 + Math.floor((e.clientY - box.top) / box.height * H));
    state.token = Math.min(L - 1, Math.floor((e.clientX - box.left) / box.width * L));
    render();
  });
  const rows = el("tbody", $("experts"));
  D.tokens.forEach((t, j) => {
    const row = el("tr", rows, null, j === D.mask_position ? "maskrow" : "");
    row.dataset.j = String(j);
    el("td", row, String(j));
    el("td", row, t, "name");
    value(el("td", row, null, "mean-gate"), D.layers[0].heads.reduce(
      (s, head) => s + head.gates[j], 0) / H);
    el("td", row, null, "expert");
    value(el("td", row, null, "norm"), E.word_norms[j]);
    value(el("td", row, null, "share"), E.word_shares[j]);
    const cell = el("td", row);
    signedBar(cell, E.word_shares[j], Math.max(...E.word_shares.map(Math.abs)));
    row.addEventListener("mouseenter", () => { state.token = j; renderInfo(); });
  });
  $("experts-note").textContent = "Layer 1 at the mask, in the hidden space: c_j = sum_h " +
    "pi^h_ij nu^h(x_j, j); share = <c_j, z> / |z|^2 with z = sum_j c_j (shares sum to " +
    fmt(E.word_shares.reduce((a, b) => a + b, 0), 6) + "); |z| = " + fmt(E.mixture_norm, 3) +
    ", the bias |bo| shared by all experts = " + fmt(E.bias_norm, 3) +
    ". The expert column is |pi^h_ij nu^h(x_j, j)| of the chosen head.";
}

function drawHeat() {
  const canvas = $("heat");
  const cw = Math.max(1, Math.min(24, Math.floor(1100 / L))), ch = Math.max(6, Math.min(18,
    Math.floor(240 / H)));
  canvas.width = cw * L;
  canvas.height = ch * H;
  const ctx = canvas.getContext("2d");
  for (let h = 1; h <= H; h++) {
    const g = gates(state.layer, h);
    for (let j = 0; j < L; j++) {
      ctx.fillStyle = shade(g[j]);
      ctx.fillRect(j * cw, (h - 1) * ch, cw, ch);
    }
  }
  ctx.strokeStyle = "#d62728";
  ctx.lineWidth = 2;
  ctx.strokeRect(D.mask_position * cw + 1, 1, cw - 2, ch * H - 2);
  ctx.strokeStyle = "#111";
  ctx.strokeRect(1, (state.head - 1) * ch + 1, cw * L - 2, ch - 2);
}

function renderInfo() {
  const g = gates(state.layer, state.head);
  let j = state.token;
  if (j < 0) j = g.indexOf(Math.max(...g));  // by default the most gated token
  for (const span of document.querySelectorAll(".tok.pinned")) span.classList.remove("pinned");
  $("tokens").children[j].classList.add("pinned");
  $("info-token").textContent = D.tokens[j];
  $("info-position").textContent = String(j);
  $("info-layer-head").textContent = "layer " + state.layer + ", head " + state.head;
  value($("info-gate"), g[j]);
  value($("info-expert"), E.expert_norms[state.head - 1][j]);
  value($("info-norm"), E.word_norms[j]);
  value($("info-share"), E.word_shares[j]);
  $("info").dataset.j = String(j);
  setHash({ view: state.view, layer: state.layer, head: state.head, token: j });
}

function render() {
  for (const name of ["gates", "experts"]) {
    $("view-" + name).classList.toggle("hidden", state.view !== name);
    $("tab-" + name).classList.toggle("active", state.view === name);
  }
  $("layer").value = String(state.layer);
  $("head").value = String(state.head);
  for (const cell of document.querySelectorAll("#grid td.selected")) {
    cell.classList.remove("selected");
  }
  $("cell-" + state.layer + "-" + state.head).classList.add("selected");
  const g = gates(state.layer, state.head);
  const spans = $("tokens").children;
  for (let j = 0; j < L; j++) {
    const span = spans[j];
    span.dataset.gate = String(g[j]);
    span.style.backgroundColor = shade(g[j]);
    span.style.color = ink(g[j]);
    span.title = D.tokens[j] + " (" + j + "): gate " + fmt(g[j]);
  }
  const head = D.layers[state.layer - 1].heads[state.head - 1];
  value($("entropy"), head.entropy, 3);
  value($("effective"), head.effective_experts, 2);
  $("dominant").textContent = head.dominant.map((d) => d.token + "(" + d.position + ") " +
    fmt(d.gate, 3)).join("   ");
  for (const row of $("experts").tBodies[0].rows) {
    value(row.querySelector(".expert"), E.expert_norms[state.head - 1][+row.dataset.j]);
  }
  $("expert-head").textContent = "|pi nu| head " + state.head;
  drawHeat();
  renderInfo();
}

"""

EXPLAIN_BODY = """
<h1 id="title"></h1>
<p class="meta" id="sentence"></p>
<p class="meta" id="checkpoint"></p>
<nav><button id="tab-gates">gates</button> <button id="tab-experts">layer-1 experts</button></nav>
<section id="view-gates">
  <div class="controls">
    <label>layer <select id="layer"></select></label>
    <label>head <select id="head"></select></label>
    entropy <span id="entropy"></span> nats, <span id="effective"></span> effective experts;
    dominant: <span id="dominant"></span>
  </div>
  <div id="tokens"></div>
  <div class="panel">
    <dl id="info">
      <dt>token</dt><dd id="info-token"></dd>
      <dt>position</dt><dd id="info-position"></dd>
      <dt>gate in</dt><dd id="info-layer-head"></dd>
      <dt>gate</dt><dd id="info-gate"></dd>
      <dt>layer-1 expert norm</dt><dd id="info-expert"></dd>
      <dt>layer-1 word norm</dt><dd id="info-norm"></dd>
      <dt>layer-1 share</dt><dd id="info-share"></dd>
    </dl>
    <div>
      <p class="note">Effective experts exp(entropy) of every layer's and head's gate at the
      mask: click a cell to show its gates.</p>
      <table id="grid"></table>
    </div>
  </div>
  <p class="note">The chosen layer: one row per head, one column per token (the mask framed in
  red, the chosen head in black); click to choose a head and token.</p>
  <canvas id="heat"></canvas>
</section>
<section id="view-experts" class="hidden">
  <p class="note" id="experts-note"></p>
  <table id="experts"><thead><tr><th>pos</th><th class="name">token</th><th>mean gate</th>
  <th id="expert-head"></th><th>|c_j|</th><th>share</th><th></th></tr></thead></table>
</section>
"""

TABLE_SCRIPT = """
const D = DATA;
const state = { row: D.rows[0].row, sort: "centred" };
const SORTS = ["centred", "importance", "shift", "column"];
const importance = new Map(D.importance.columns.map((c, n) => [c, D.importance.values[n]]));
const shift = new Map(D.shift ? D.shift.columns.map((c, n) => [c, n]) : []);
const maxImportance = Math.max(...D.importance.values);
const maxShift = D.shift ? Math.max(...D.shift.shift.map(Math.abs)) : 0;

function readHash() {
  const p = hashParams();
  const row = parseInt(p.get("row"), 10);
  if (D.rows.some((r) => r.row === row)) state.row = row;
  if (SORTS.includes(p.get("sort"))) state.sort = p.get("sort");
}

function build() {
  $("title").textContent = "Which columns (experts) drive the predictions";
  $("model").textContent = D.model + ": " + D.rows.length + " rows explained, " +
    D.importance.columns.length + " columns; " + D.quantity;
  for (const r of D.rows) {
    el("option", $("row"), "row " + r.row + " (class " + r.klass + ")").value = r.row;
  }
  for (const s of SORTS) el("option", $("sort"), s).value = s;
  $("row").addEventListener("change", (e) => { state.row = +e.target.value; render(); });
  $("sort").addEventListener("change", (e) => { state.sort = e.target.value; render(); });
  if (!D.shift) $("shift-head").textContent = "gate shift (no --reference)";
  else $("shift-head").textContent = "mean gate " + D.groups[0] + " -> " + D.groups[1];
}

function render() {
  $("row").value = String(state.row);
  $("sort").value = state.sort;
  const r = D.rows.find((x) => x.row === state.row);
  $("predicted").textContent = "row " + r.row + ": predicted class " + r.klass +
    "; contributions to its logit minus their mean over the classes (centred)";
  const scale = Math.max(...r.centred.map(Math.abs));
  const order = r.columns.map((c, n) => n).filter((n) => r.columns[n] !== D.bias);
  const key = {
    centred: (n) => -Math.abs(r.centred[n]),
    importance: (n) => -(importance.get(r.columns[n]) ?? -1),
    shift: (n) => (shift.has(r.columns[n]) ? -Math.abs(D.shift.shift[shift.get(r.columns[n])]) : 1),
    column: (n) => n,
  }[state.sort];
  order.sort((a, b) => key(a) - key(b) || a - b);
  const body = $("columns").tBodies[0];
  body.replaceChildren();
  for (const n of [...order, r.columns.indexOf(D.bias)]) {
    if (n < 0) continue;
    const name = r.columns[n];
    const tr = el("tr", body);
    tr.dataset.column = name;
    el("td", tr, name, "name").title = name;
    value(el("td", tr, null, "gate"), r.gate[n]);
    value(el("td", tr, null, "contribution"), r.contribution[n]);
    value(el("td", tr, null, "centred"), r.centred[n]);
    signedBar(el("td", tr), r.centred[n], scale);
    const imp = importance.get(name);       // undefined: the bias, the target's slot
    value(el("td", tr, null, "importance"), imp);
    const icell = el("td", tr);
    if (imp !== undefined) signedBar(icell, imp, maxImportance);
    const s = shift.get(name);              // undefined: no reference, or the bias
    const at = (group) => (s === undefined ? undefined : D.shift[group][s]);
    value(el("td", tr, null, "reference"), at("reference"));
    value(el("td", tr, null, "data"), at("data"));
    value(el("td", tr, null, "shift"), at("shift"));
    const scell = el("td", tr);
    if (s !== undefined) signedBar(scell, at("shift"), maxShift);
  }
  setHash({ row: state.row, sort: state.sort });
}

"""

# both pages start the same way: read the view from the URL fragment, build, render, time it
START_SCRIPT = """
const started = performance.now();
readHash();
build();
render();
window.addEventListener("hashchange", () => { readHash(); render(); });
document.body.dataset.renderMs = String(Math.round(performance.now() - started));
document.body.dataset.ready = "1";
"""

TABLE_BODY = """
<h1 id="title"></h1>
<p class="meta" id="model"></p>
<div class="controls">
  <label>row <select id="row"></select></label>
  <label>sort by <select id="sort"></select></label>
</div>
<p class="note" id="predicted"></p>
<table id="columns"><thead><tr><th class="name">column</th><th>gate</th><th>contribution</th>
<th>centred</th><th></th><th>global importance</th><th></th>
<th colspan="4" id="shift-head"></th></tr></thead><tbody></tbody></table>
"""


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _page(title: str, body: str, script: str, data: dict[str, Any]) -> str:
    """One self-contained page: ``body`` markup, the style, the data and ``script`` inline,
    under a Content-Security-Policy that allows exactly this script and style and no load."""
    script = COMMON_SCRIPT + script + START_SCRIPT
    policy = (f"default-src 'none'; script-src {_hash(script)}; style-src {_hash(STYLE)}; "
              "img-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'")
    # the JSON cannot close its <script> element: '</' is written '<\/' (same JSON value)
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body data-ready=\"0\">\n<p id=\"violations\" data-count=\"0\"></p>\n{body}\n"
        f"<script type=\"application/json\" id=\"data\">{payload}</script>\n"
        f"<script>{script}</script>\n</body></html>\n"
    )


def explain_page(data: dict[str, Any]) -> str:
    """The page of a checkpoint's explanation; ``data`` is
    :func:`wordexperts.bert.render.to_dict` (the content of ``explain.json``)."""
    return _page(f"wordexperts explain: {data['sentence']}", EXPLAIN_BODY, EXPLAIN_SCRIPT, data)


def table_page(data: dict[str, Any]) -> str:
    """The page of a table's explanation; ``data`` from
    :func:`wordexperts.harness.explain_table.page_data`."""
    return _page("wordexperts explain-table", TABLE_BODY, TABLE_SCRIPT, data)


def write_page(page: str, path: str | Path) -> Path:
    """Write ``page`` to ``path`` atomically (a scratch file beside it, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.partial"
    try:
        scratch.write_text(page, encoding="utf-8")
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    return path
