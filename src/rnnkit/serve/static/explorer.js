// rnnkit explorer: plain JavaScript, no build step, nothing loaded from elsewhere.
// Talks to /v1/models, /v1/inspect and /v1/generate; or, in a file written by `rnnkit inspect`,
// renders the data embedded in window.RNNKIT_EMBEDDED (no server: typing and generation are off).
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#2d6cdf", "#d9480f", "#2b8a3e", "#9c36b5", "#e8590c", "#0c8599", "#c2255c", "#5c940d",
  "#862e9c", "#495057"];
const SIGMOID = new Set(["i", "f", "o", "r", "z"]);
const SERIES_ORDER = ["h", "c", "i", "f", "g", "o", "r", "z", "n", "pre"];
const SERIES_TEXT = {h: "h (hidden state)", c: "c (cell state)", i: "i (input gate)", f: "f (forget gate)",
  g: "g (candidate)", o: "o (output gate)", r: "r (reset gate)", z: "z (update gate)", n: "n (candidate)",
  pre: "pre-activation"};

const state = {models: [], model: null, data: null, layer: 0, series: "h", unit: 0, span: null, anchor: null,
  seq: 0, embedded: window.RNNKIT_EMBEDDED || null};

// ---------------------------------------------------------------- helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "style") node.style.cssText = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c);
  return node;
}

function setStatus(text, isError = false) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "muted";
}

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  const payload = await response.json();
  if (!response.ok) throw new Error(payload.error ? payload.error.message : response.statusText);
  return payload;
}

// Diverging blue-white-red for values in [-lim, lim]; white to purple for [0, 1].
function diverging(v, lim) {
  const t = Math.max(-1, Math.min(1, v / lim));
  const [r, g, b] = t >= 0 ? [255 - 55 * t, 255 - 185 * t, 255 - 197 * t] : [255 + 196 * t, 255 + 144 * t, 255 + 73 * t];
  return `rgb(${r | 0},${g | 0},${b | 0})`;
}
function sequential(v) {
  const t = Math.max(0, Math.min(1, v));
  return `rgb(${(255 - 160 * t) | 0},${(255 - 200 * t) | 0},${(255 - 90 * t) | 0})`;
}
function scaleFor(name, matrix) {
  if (SIGMOID.has(name)) return {color: sequential, text: "0 … 1"};
  let lim = 1;
  for (const row of matrix) for (const v of row) lim = Math.max(lim, Math.abs(v));
  return {color: (v) => diverging(v, lim), text: `−${lim.toFixed(2)} … ${lim.toFixed(2)}`};
}

function tokenText(tok) { return tok === "\n" ? "\n" : tok; }
function isChar() { return state.model && state.model.tokenizer && state.model.tokenizer.type === "char"; }

function renderTokens(container, colorOf, titleOf) {
  container.replaceChildren();
  const tokens = state.data.tokens;
  tokens.forEach((tok, t) => {
    if (t > 0 && !isChar()) container.append(" ");
    const span = el("span", {className: "tok" + (tok === "\n" ? " nl" : ""), "data-t": String(t)});
    span.textContent = tok === "\n" ? "" : tok;
    const color = colorOf(t);
    if (color) span.style.background = color;
    span.title = titleOf(t);
    container.append(span);
    if (tok === "\n") container.append("\n");
  });
}

// ---------------------------------------------------------------- LSTMVis-style span search
// The same rule as rnnkit.serve.inspection.span_units (the browser test checks they agree).
function spanUnits(h, start, end, threshold, top = 10) {
  const steps = h.length, units = h[0].length;
  const out = {units: [], off_elsewhere: [], matches: []};
  const outside = steps - (end - start);
  const cands = [];
  for (let u = 0; u < units; u++) {
    let allOn = true, sum = 0, off = 0;
    for (let t = start; t < end; t++) { if (!(h[t][u] > threshold)) allOn = false; sum += h[t][u]; }
    if (!allOn) continue;
    for (let t = 0; t < steps; t++) if ((t < start || t >= end) && !(h[t][u] > threshold)) off++;
    const offRate = outside > 0 ? off / outside : 1;
    cands.push({u, off: Math.round(offRate * 1e9) / 1e9, offRate, mean: sum / (end - start)});
  }
  cands.sort((a, b) => (b.off - a.off) || (b.mean - a.mean) || (a.u - b.u));
  const chosen = cands.slice(0, top);
  out.units = chosen.map((c) => c.u);
  out.off_elsewhere = chosen.map((c) => Math.round(c.offRate * 1e4) / 1e4);
  if (out.units.length) {
    for (let t = 0; t < steps; t++) if (out.units.every((u) => h[t][u] > threshold)) out.matches.push(t);
  }
  return out;
}

// ---------------------------------------------------------------- drawing
function drawHeatmap(canvas, matrix, name, rows, onHover, onClick) {
  // matrix[t][unit]; draws rows (units) × columns (tokens).
  const steps = matrix.length;
  const cw = Math.max(4, Math.min(22, Math.floor(1100 / steps)));
  const ch = Math.max(3, Math.min(12, Math.floor(420 / rows.length)));
  const left = 34, labelled = cw >= 9, bottom = labelled ? 48 : 2;
  canvas.width = left + cw * steps;
  canvas.height = ch * rows.length + bottom;
  const ctx = canvas.getContext("2d");
  const scale = scaleFor(name, matrix);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = "9px sans-serif";
  ctx.fillStyle = "#67707c";
  rows.forEach((u, r) => {
    if (ch >= 9 || r % Math.ceil(9 / ch) === 0) ctx.fillText(String(u), 2, r * ch + Math.min(ch, 9));
    for (let t = 0; t < steps; t++) {
      ctx.fillStyle = scale.color(matrix[t][u]);
      ctx.fillRect(left + t * cw, r * ch, cw, ch);
    }
    ctx.fillStyle = "#67707c";
  });
  if (labelled) {  // the tokens under their columns, rotated
    ctx.save();
    ctx.font = `${Math.min(11, cw - 1)}px ui-monospace, monospace`;
    ctx.fillStyle = "#1d232b";
    state.data.tokens.forEach((tok, t) => {
      ctx.save();
      ctx.translate(left + t * cw + cw * 0.7, ch * rows.length + 4);
      ctx.rotate(Math.PI / 2);
      ctx.fillText(JSON.stringify(tok).slice(1, -1).slice(0, 7), 0, 0);
      ctx.restore();
    });
    ctx.restore();
  }
  canvas.dataset.rows = String(rows.length);
  canvas.dataset.cols = String(steps);
  canvas.dataset.scale = scale.text;
  const locate = (ev) => {
    const box = canvas.getBoundingClientRect();
    const x = (ev.clientX - box.left) * canvas.width / box.width, y = (ev.clientY - box.top) * canvas.height / box.height;
    const t = Math.floor((x - left) / cw), r = Math.floor(y / ch);
    return t >= 0 && t < steps && r >= 0 && r < rows.length ? {t, u: rows[r]} : null;
  };
  canvas.onmousemove = (ev) => { const p = locate(ev); if (p && onHover) onHover(p, matrix[p.t][p.u], scale.text); };
  canvas.onclick = (ev) => { const p = locate(ev); if (p && onClick) onClick(p); };
}

function drawProbChart(canvas, probs, labels) {
  const steps = probs.length;
  const width = canvas.clientWidth || 900, height = 180, pad = {l: 34, r: 10, t: 8, b: 22};
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const x = (t) => pad.l + (steps === 1 ? 0.5 : t / (steps - 1)) * (width - pad.l - pad.r);
  const y = (p) => pad.t + (1 - p) * (height - pad.t - pad.b);
  ctx.strokeStyle = "#dde2e8";
  ctx.fillStyle = "#67707c";
  ctx.font = "10px sans-serif";
  for (const p of [0, 0.5, 1]) {
    ctx.beginPath(); ctx.moveTo(pad.l, y(p)); ctx.lineTo(width - pad.r, y(p)); ctx.stroke();
    ctx.fillText(p.toFixed(1), 4, y(p) + 3);
  }
  const every = Math.max(1, Math.ceil(steps / Math.max(1, (width - pad.l) / 46)));
  state.data.tokens.forEach((tok, t) => {
    if (t % every === 0) ctx.fillText(JSON.stringify(tok).slice(1, -1).slice(0, 7), x(t) - 8, height - 6);
  });
  labels.forEach((label, c) => {
    ctx.strokeStyle = PALETTE[c % PALETTE.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    probs.forEach((row, t) => (t === 0 ? ctx.moveTo(x(t), y(row[c])) : ctx.lineTo(x(t), y(row[c]))));
    ctx.stroke();
    if (steps === 1) { ctx.fillStyle = ctx.strokeStyle; ctx.fillRect(x(0) - 3, y(probs[0][c]) - 3, 6, 6); }
  });
  canvas.dataset.steps = String(steps);
}

function scatter(gate, sat) {
  const size = 150, pad = 22;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", size);
  svg.setAttribute("height", size);
  svg.setAttribute("data-gate", gate);
  const add = (tag, attrs) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    svg.append(n);
    return n;
  };
  const span = size - pad - 6;
  add("rect", {x: pad, y: 6, width: span, height: span, fill: "#fafbfc", stroke: "#dde2e8"});
  add("line", {x1: pad, y1: 6 + span, x2: pad + span, y2: 6, stroke: "#eceff3"});
  sat.right.forEach((r, u) => {
    const dot = add("circle", {cx: pad + r * span, cy: 6 + (1 - sat.left[u]) * span, r: 2.6,
      fill: "#2d6cdf", "fill-opacity": 0.55});
    const title = document.createElementNS(ns, "title");
    title.textContent = `unit ${u}: right ${(r * 100).toFixed(0)}%, left ${(sat.left[u] * 100).toFixed(0)}%`;
    dot.append(title);
  });
  add("text", {x: pad, y: size - 4, "font-size": 9, fill: "#67707c"}).textContent = "right-saturated →";
  const yl = add("text", {x: 10, y: 6 + span, "font-size": 9, fill: "#67707c", transform: `rotate(-90 10 ${6 + span})`});
  yl.textContent = "left-saturated →";
  return svg;
}

// ---------------------------------------------------------------- views
function currentLayer() { return state.data.layers[state.layer]; }

function renderPrediction() {
  const d = state.data, box = $("final-probs");
  box.replaceChildren();
  $("prediction-panel").hidden = false;
  const chart = $("prob-chart"), steps = $("lm-steps");
  if (d.kind === "classifier") {
    $("prediction-title").textContent = "Class probabilities as the network reads (each step: the text cut there)";
    const final = d.probabilities[d.probabilities.length - 1];
    d.labels.forEach((label, c) => {
      box.append(el("span", {}, el("span", {className: "swatch", style: `background:${PALETTE[c % PALETTE.length]}`}), label),
        el("div", {className: "bar", style: `width:${(final[c] * 100).toFixed(1)}%;background:${PALETTE[c % PALETTE.length]}`}),
        el("span", {className: "mono prob", "data-label": label, "data-p": String(final[c])}, final[c].toFixed(4)));
    });
    chart.hidden = false;
    steps.replaceChildren();
    drawProbChart(chart, d.probabilities, d.labels);
  } else {
    $("prediction-title").textContent = "Next-token distribution at each step";
    const last = d.predictions[d.predictions.length - 1].top;
    last.slice(0, 8).forEach((c, i) => {
      box.append(el("span", {className: "mono"}, JSON.stringify(c.token)),
        el("div", {className: "bar", style: `width:${(c.p * 100).toFixed(1)}%;background:${PALETTE[i % PALETTE.length]}`}),
        el("span", {className: "mono prob", "data-label": c.token, "data-p": String(c.p)}, c.p.toFixed(4)));
    });
    chart.hidden = true;
    const table = el("table", {className: "steps"});
    table.append(el("tr", {}, el("th", {}, "token"), el("th", {}, "p(next token)"), el("th", {}, "most likely next")));
    d.predictions.forEach((p, t) => {
      const cands = el("td");
      p.top.slice(0, 6).forEach((c) => cands.append(el("span", {className: "cand"}, el("b", {}, JSON.stringify(c.token).slice(1, -1)),
        " " + c.p.toFixed(3))));
      const pn = p.p_next === undefined ? "" : p.p_next.toFixed(3);
      table.append(el("tr", {"data-t": String(t)}, el("td", {className: "mono"}, JSON.stringify(d.tokens[t]).slice(1, -1)),
        el("td", {className: "mono", style: p.p_next === undefined ? "" : `background:rgba(217,72,15,${(0.55 * (1 - p.p_next)).toFixed(3)})`}, pn), cands));
    });
    steps.replaceChildren(table);
  }
}

function renderLayerChoices() {
  const layerSel = $("layer"), seriesSel = $("series");
  layerSel.replaceChildren(...state.data.layers.map((l, i) => el("option", {value: String(i)}, `${l.layer} ${l.direction}`)));
  state.layer = Math.min(state.layer, state.data.layers.length - 1);
  layerSel.value = String(state.layer);
  const names = SERIES_ORDER.filter((n) => n in currentLayer().series);
  seriesSel.replaceChildren(...names.map((n) => el("option", {value: n}, SERIES_TEXT[n] || n)));
  if (!names.includes(state.series)) state.series = names[0];
  seriesSel.value = state.series;
}

function renderHeatmap() {
  const matrix = currentLayer().series[state.series];
  const units = matrix[0].length;
  $("states-panel").hidden = false;
  drawHeatmap($("heatmap"), matrix, state.series, [...Array(units).keys()],
    (p, v, scale) => { $("heat-hover").textContent = `unit ${p.u} · token ${p.t} ${JSON.stringify(state.data.tokens[p.t])} · ${state.series} = ${v.toFixed(4)} (scale ${scale})`; },
    (p) => { state.unit = p.u; $("unit").value = String(p.u); renderUnitText(); });
}

function hSeries() { return currentLayer().series.h || currentLayer().series[state.series]; }

function renderUnitText() {
  const h = currentLayer().series[state.series];
  const units = h[0].length;
  state.unit = Math.max(0, Math.min(units - 1, state.unit | 0));
  $("unit").max = String(units - 1);
  $("unit-panel").hidden = false;
  const scale = scaleFor(state.series, h);
  renderTokens($("unit-text"), (t) => scale.color(h[t][state.unit]),
    (t) => `${state.series}[${state.unit}] = ${h[t][state.unit].toFixed(4)}`);
}

function renderSpan() {
  const h = hSeries();
  $("span-panel").hidden = false;
  const threshold = parseFloat($("threshold").value);
  let result = null;
  if (state.span) result = spanUnits(h, state.span[0], state.span[1], isNaN(threshold) ? 0.3 : threshold);
  const matches = new Set(result ? result.matches : []);
  // The token nodes are built once per reading (renderViews), so a drag keeps pointing at live nodes.
  for (const node of $("span-text").querySelectorAll(".tok")) {
    node.classList.remove("sel", "match");
    const t = +node.dataset.t;
    if (state.span && t >= state.span[0] && t < state.span[1]) node.classList.add("sel");
    if (matches.has(t)) node.classList.add("match");
  }
  const box = $("span-result"), canvas = $("span-heatmap");
  box.dataset.units = result ? JSON.stringify(result.units) : "";
  if (!result) { box.textContent = "Select a span of tokens."; canvas.width = 0; canvas.height = 0; return; }
  if (!result.units.length) {
    box.textContent = `No unit is above ${threshold} at every token of [${state.span[0]}, ${state.span[1]}).`;
    canvas.width = 0; canvas.height = 0; return;
  }
  box.textContent = `units ${result.units.join(", ")} · off elsewhere ${result.off_elsewhere.map((r) => (r * 100).toFixed(0) + "%").join(", ")}` +
    ` · all on at ${result.matches.length} token(s), underlined`;
  drawHeatmap(canvas, h, "h", result.units, null, (p) => { state.unit = p.u; $("unit").value = String(p.u); renderUnitText(); });
}

function renderSaturation() {
  const box = $("saturation");
  box.replaceChildren();
  const sat = currentLayer().saturation || {};
  const gates = Object.keys(sat);
  $("saturation-panel").hidden = gates.length === 0;
  for (const gate of gates) box.append(el("figure", {}, scatter(gate, sat[gate]), el("figcaption", {}, SERIES_TEXT[gate] || gate)));
}

function renderAll() {
  renderPrediction();
  renderLayerChoices();
  renderViews();
}
function renderViews() {
  renderHeatmap();
  renderUnitText();
  renderTokens($("span-text"), () => null, (t) => `token ${t}`);
  renderSpan();
  renderSaturation();
  document.body.dataset.ready = String(state.seq);
}

// ---------------------------------------------------------------- actions
async function read() {
  const text = $("text").value;
  if (!text.trim()) { setStatus("Type some text."); return; }
  const seq = ++state.seq;
  setStatus("reading…");
  const started = performance.now();
  try {
    const data = await api("v1/inspect", {text, model: state.model.name});
    if (seq !== state.seq) return; // a newer request is on its way
    state.data = data;
    if (state.span && state.span[1] > data.tokens.length) state.span = null;
    renderAll();
    setStatus(`${data.tokens.length} tokens${data.truncated ? " (cut at the server's limit)" : ""} · ` +
      `${(performance.now() - started).toFixed(0)} ms`);
  } catch (err) {
    if (seq === state.seq) setStatus(err.message, true);
  }
}

function parseSSE(buffer, onEvent) {
  let cut;
  while ((cut = buffer.indexOf("\n\n")) >= 0) {
    const block = buffer.slice(0, cut);
    buffer = buffer.slice(cut + 2);
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    onEvent(event, data ? JSON.parse(data) : null);
  }
  return buffer;
}

async function generate() {
  const button = $("generate"), out = $("gen-out"), status = $("gen-status");
  const num = (id, parse) => { const v = $(id).value; return v === "" ? null : parse(v); };
  const body = {prompt: $("text").value, model: state.model.name, max_tokens: num("gen-max", parseInt) || 200,
    temperature: num("gen-temp", parseFloat) ?? 0.8, top_k: num("gen-topk", parseInt), top_p: num("gen-topp", parseFloat),
    seed: num("gen-seed", parseInt), stop: $("gen-stop").value || null, stream: true};
  out.querySelector(".prompt").textContent = body.prompt;
  const sample = out.querySelector(".sample");
  sample.textContent = "";
  button.disabled = true;
  status.textContent = "generating…";
  status.className = "muted";
  const started = performance.now();
  let first = null;
  try {
    const response = await fetch("v1/generate", {method: "POST", headers: {"content-type": "application/json"},
      body: JSON.stringify(body)});
    if (!response.ok) { const e = await response.json(); throw new Error(e.error.message); }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer = parseSSE(buffer + decoder.decode(value, {stream: true}), (event, data) => {
        if (event === "token") {
          if (first === null) first = performance.now() - started;
          sample.textContent += data.text;
        } else if (event === "done") {
          status.textContent = `${data.tokens} tokens · ${data.finish_reason} · first token after ${first === null ? "-" : first.toFixed(0)} ms`;
          sample.dataset.done = "1";
        } else if (event === "error") {
          throw new Error(data.error.message);
        }
      });
    }
  } catch (err) {
    status.textContent = err.message;
    status.className = "error";
  } finally {
    button.disabled = false;
  }
}

function chooseModel(name) {
  state.model = state.models.find((m) => m.name === name) || state.models[0];
  const m = state.model;
  $("model-info").textContent = `${m.kind.replace("_", " ")} · ${m.cell} · ${m.num_layers} × ${m.hidden_size}` +
    (m.bidirectional ? " · bidirectional" : "") + ` · ${m.tokenizer.type} tokens` + (m.labels ? ` · labels: ${m.labels.join(", ")}` : "");
  $("generate-panel").hidden = state.embedded !== null || m.kind !== "language_model";
}

function wire() {
  let timer = null;
  $("text").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(read, 350); });
  $("read").addEventListener("click", read);
  $("model").addEventListener("change", () => { chooseModel($("model").value); state.span = null; read(); });
  $("layer").addEventListener("change", () => { state.layer = +$("layer").value; renderLayerChoices(); renderViews(); });
  $("series").addEventListener("change", () => { state.series = $("series").value; renderViews(); });
  $("unit").addEventListener("input", () => { state.unit = +$("unit").value; renderUnitText(); });
  $("threshold").addEventListener("input", renderSpan);
  $("generate").addEventListener("click", generate);
  const spanText = $("span-text");
  let dragging = false;
  const tokenAt = (ev) => { const n = ev.target.closest(".tok"); return n ? +n.dataset.t : null; };
  const setSpan = (a, b) => { state.span = [Math.min(a, b), Math.max(a, b) + 1]; renderSpan(); };
  spanText.addEventListener("mousedown", (ev) => {
    const t = tokenAt(ev);
    if (t === null) return;
    ev.preventDefault();
    if (ev.shiftKey && state.anchor !== null) { setSpan(state.anchor, t); return; }
    state.anchor = t; dragging = true; setSpan(t, t);
  });
  spanText.addEventListener("mouseover", (ev) => { const t = tokenAt(ev); if (dragging && t !== null) setSpan(state.anchor, t); });
  document.addEventListener("mouseup", () => { dragging = false; });
}

async function init() {
  wire();
  try {
    if (state.embedded) {
      state.models = state.embedded.models;
      $("text").value = state.embedded.text;
      $("text").readOnly = true;
      $("read").hidden = true;
    } else {
      state.models = (await api("v1/models")).models;
    }
    $("model").replaceChildren(...state.models.map((m) => el("option", {value: m.name}, `${m.name} (${m.kind.replace("_", " ")})`)));
    chooseModel(state.models[0].name);
    if (state.embedded) {
      state.data = state.embedded.inspect;
      state.span = state.embedded.span || null;
      renderAll();
      setStatus(`${state.data.tokens.length} tokens · written by rnnkit inspect`);
    } else if ($("text").value.trim()) {
      read();
    }
  } catch (err) {
    setStatus(err.message, true);
  }
}

window.explorer = {state, spanUnits, read, generate};
init();
