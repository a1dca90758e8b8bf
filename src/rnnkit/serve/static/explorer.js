// rnnkit explorer: plain JavaScript, no build step, nothing loaded from elsewhere.
// Talks to /v1/models, /v1/inspect and /v1/generate; or, in a file written by `rnnkit inspect`,
// renders the data embedded in window.RNNKIT_EMBEDDED (no server: typing and generation are off).
"use strict";

const $ = (id) => document.getElementById(id);

const state = {models: [], model: null, data: null, layer: 0, series: "h", unit: 0, span: null, anchor: null,
  seq: 0, embedded: window.RNNKIT_EMBEDDED || null};

// ---------------------------------------------------------------- helpers
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
// ---------------------------------------------------------------- views
function currentLayer() { return state.data.layers[state.layer]; }

// The series' names and what they are come with the data (rnnkit.layers.trace.SERIES, in its order).
function seriesTexts() { return state.data.series_text || {}; }
function seriesLabel(name) {
  const texts = seriesTexts();
  return Object.hasOwn(texts, name) ? `${name} (${texts[name]})` : name;
}

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
    drawProbChart(chart, d.probabilities, d.tokens, d.labels);
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
  const present = Object.keys(currentLayer().series), known = Object.keys(seriesTexts());
  const names = [...known.filter((n) => present.includes(n)), ...present.filter((n) => !known.includes(n))];
  seriesSel.replaceChildren(...names.map((n) => el("option", {value: n}, seriesLabel(n))));
  if (!names.includes(state.series)) state.series = names[0];
  seriesSel.value = state.series;
}

function renderHeatmap() {
  const matrix = currentLayer().series[state.series];
  const units = matrix[0].length;
  $("states-panel").hidden = false;
  drawHeatmap($("heatmap"), matrix, state.data.tokens, state.series, [...Array(units).keys()],
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
  drawHeatmap(canvas, h, state.data.tokens, "h", result.units, null, (p) => { state.unit = p.u; $("unit").value = String(p.u); renderUnitText(); });
}

function renderSaturation() {
  const box = $("saturation");
  box.replaceChildren();
  const sat = currentLayer().saturation || {};
  const gates = Object.keys(sat);
  $("saturation-panel").hidden = gates.length === 0;
  for (const gate of gates) box.append(el("figure", {}, scatter(gate, sat[gate]), el("figcaption", {}, seriesLabel(gate))));
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
      state.unit = state.embedded.unit || 0;
      $("unit").value = String(state.unit);
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
