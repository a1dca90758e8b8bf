// rnnkit explorer, drawing: colour scales, the heatmap, the probability chart, the saturation plots and the
// LSTMVis-style span search. Plain functions of their arguments (no page state); explorer.js uses them.
"use strict";

const PALETTE = ["#2d6cdf", "#d9480f", "#2b8a3e", "#9c36b5", "#e8590c", "#0c8599", "#c2255c", "#5c940d",
  "#862e9c", "#495057"];
const SIGMOID = new Set(["i", "f", "o", "r", "z"]);

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
function drawHeatmap(canvas, matrix, tokens, name, rows, onHover, onClick) {
  // matrix[t][unit]; draws rows (units) × columns (tokens), the tokens written under their columns.
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
    tokens.forEach((tok, t) => {
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

function drawProbChart(canvas, probs, tokens, labels) {
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
  tokens.forEach((tok, t) => {
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
