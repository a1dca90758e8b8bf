"""What the network reads, step by step: the data behind ``/v1/inspect``, the explorer and ``rnnkit inspect``.

For a text it returns, per token:

* the prediction as the RNN reads it: a classifier's class probabilities had the text ended at
  that token (every prefix run through the model itself, so the last row is exactly what
  ``predict`` gives), or a language model's next-token distribution (top k, and the probability
  it gave the token that really came next);
* for every layer and direction, the hidden state ``h`` (and ``c``) and the gates, from the
  layers' reference trace (``layer.trace``); the reverse direction's step t is the state after
  reading token t coming from the end, so columns line up with tokens;
* gate saturation per unit: the fraction of steps a gate spends near its bounds;
* ``series_text``: every series name a trace can hold and what it is (``rnnkit.layers.trace.SERIES``), in the
  order the explorer lists them: the page labels its views from it.

All arrays are plain nested lists (token-major: ``series["h"][t][unit]``), ready for JSON.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnkit.layers.trace import SERIES
from rnnkit.models.classifier import EnsembleClassifier
from rnnkit.saved.kinds import CLASSIFIER, LANGUAGE_MODEL
from rnnkit.validation import check_finite_number

# A sigmoid gate below 0.1 or above 0.9 (a tanh one below -0.9 or above 0.9) counts as saturated.
SIGMOID_GATES = {"i", "f", "o", "r", "z"}
TANH_GATES = {"g", "n"}
SATURATION = 0.1
PREFIX_CHUNK = 64  # prefixes run per forward pass when computing per-step class probabilities


def _rounded(x, digits: int = 4):
    return np.round(np.asarray(x, dtype=np.float64), digits).tolist()


def saturation(series: dict[str, torch.Tensor]) -> dict[str, dict[str, list[float]]]:
    """Per gate, per unit: fraction of steps left-saturated (near the lower bound) and right-saturated."""
    out = {}
    for name, values in series.items():
        if name in SIGMOID_GATES:
            low, high = SATURATION, 1 - SATURATION
        elif name in TANH_GATES:
            low, high = -1 + SATURATION, 1 - SATURATION
        else:
            continue
        out[name] = {"left": _rounded((values < low).double().mean(0)),
                     "right": _rounded((values > high).double().mean(0))}
    return out


def _layer_views(steps, names: tuple[str, ...] | None, offset: int = 0) -> list[dict]:
    """``steps[k][d]`` dicts of (1, T, H) tensors → JSON-ready layer views."""
    views = []
    for k, directions in enumerate(steps):
        for d, record in enumerate(directions):
            series = {name: values[0].float() for name, values in record.items() if names is None or name in names}
            gates = {name: values[0].float() for name, values in record.items() if name not in ("h", "c")}
            views.append({"layer": k + offset, "direction": "backward" if d == 1 else "forward",
                          "series": {name: _rounded(v) for name, v in series.items()},
                          "saturation": saturation(gates)})
    return views


def _check_series(include) -> tuple[str, ...] | None:
    if include is None:
        return None
    bad = sorted(set(include) - set(SERIES))
    if bad:
        raise ValueError(f"include names unknown series {bad}; choose from {list(SERIES)}")
    return tuple(include)


def tokens_of(model, text: str, limit: int) -> tuple[list[str], list[int], bool]:
    """(tokens, ids, truncated) of ``text`` under ``model``'s tokenizer, at most ``limit`` tokens."""
    tokens = model.tokenizer.tokenize(text)
    if not tokens:
        raise ValueError("text has no tokens: nothing to inspect")
    truncated = len(tokens) > limit
    tokens = tokens[:limit]
    return tokens, model.vocab.encode(tokens), truncated


@torch.no_grad()
def inspect_classifier(classifier, text: str, max_tokens: int = 400, include=None) -> dict:
    names = _check_series(include)
    limit = min(max_tokens, classifier.max_length or max_tokens)
    tokens, ids, truncated = tokens_of(classifier, text.strip(), limit)
    net = classifier.model
    steps = len(ids)
    ids_t = torch.tensor(ids, dtype=torch.long)
    # Every prefix as its own sequence: row t is the text cut after token t (lengths 1..T, padded).
    probs = []
    for start in range(0, steps, PREFIX_CHUNK):
        lengths = torch.arange(start + 1, min(start + PREFIX_CHUNK, steps) + 1)
        width = int(lengths[-1])
        batch = ids_t[:width].repeat(len(lengths), 1)
        batch[torch.arange(width).unsqueeze(0) >= lengths.unsqueeze(1)] = classifier.vocab.pad_id
        probs.append(net(batch, lengths).softmax(-1).double())
    per_step = torch.cat(probs)
    member = net.members[0] if isinstance(net, EnsembleClassifier) else net
    embedded = member.encoder.embedding(ids_t.unsqueeze(0))
    trace = member.encoder.rnn.trace(embedded, lengths=torch.tensor([steps]))
    return {
        "kind": CLASSIFIER, "tokens": tokens, "ids": ids, "truncated": truncated,
        "unknown": [i == classifier.vocab.unk_id for i in ids],
        "labels": list(classifier.labels),
        "probabilities": _rounded(per_step, 6),
        "final": dict(zip(classifier.labels, _rounded(per_step[-1], 6), strict=True)),
        "traced_member": 0 if isinstance(net, EnsembleClassifier) else None,
        "layers": _layer_views(trace.steps, names),
        "series_text": dict(SERIES),
    }


@torch.no_grad()
def inspect_language_model(lm, text: str, max_tokens: int = 400, include=None, top_k: int = 10) -> dict:
    names = _check_series(include)
    tokens, ids, truncated = tokens_of(lm, text, max_tokens)
    net = lm.model
    x = net.embed(torch.tensor([ids], dtype=torch.long))
    views = []
    for k, layer in enumerate(net.layers):  # one single-layer recurrence per layer (dropout sits between them)
        trace = layer.trace(net.layer_input(k, x))
        views += _layer_views(trace.steps, names, offset=k)
        x = net.layer_output(k, x, trace.output)
    probs = net.decoder(net.head_input(x))[0].double().softmax(-1)  # (T, V)
    special = list(lm.vocab.special_ids)
    shown = probs.clone()
    shown[:, special] = 0.0  # generation never draws them; they are not shown as candidates either
    k = min(top_k, shown.shape[1])
    top_p, top_i = shown.topk(k, dim=1)
    next_ids = ids[1:] + [None]
    predictions = []
    for t in range(len(ids)):
        entry = {"top": [{"token": lm.vocab.decode([int(i)])[0], "p": round(float(p), 6)}
                         for p, i in zip(top_p[t], top_i[t], strict=True)]}
        if next_ids[t] is not None:
            entry["p_next"] = round(float(probs[t, next_ids[t]]), 6)
        predictions.append(entry)
    return {
        "kind": LANGUAGE_MODEL, "tokens": tokens, "ids": ids, "truncated": truncated,
        "unknown": [i == lm.vocab.unk_id for i in ids],
        "predictions": predictions,
        "layers": views,
        "series_text": dict(SERIES),
    }


def span_units(h, start: int, end: int, threshold: float = 0.3, top: int = 10) -> dict:
    """LSTMVis-style selection: units on (> threshold) over tokens [start, end) and off elsewhere.

    A unit qualifies when it is above ``threshold`` at every token of the span; qualifying units
    are ranked by the fraction of tokens outside the span where they are off (then by their mean
    on the span). ``matches`` are the tokens where every chosen unit is on. The explorer's
    JavaScript does the same computation in the page (the browser test compares the two).
    """
    check_finite_number("threshold", threshold)
    values = np.asarray(h, dtype=np.float64)
    steps = values.shape[0]
    if not (0 <= start < end <= steps):
        raise ValueError(f"span [{start}, {end}) must lie within the {steps} tokens")
    on = values > threshold
    inside = np.zeros(steps, dtype=bool)
    inside[start:end] = True
    candidates = np.flatnonzero(on[inside].all(0))
    outside = ~inside
    off_rate = (~on[outside]).mean(0) if outside.any() else np.ones(values.shape[1])
    mean_on = values[inside].mean(0)
    order = sorted(candidates.tolist(), key=lambda u: (-round(float(off_rate[u]), 9), -float(mean_on[u]), u))[:top]
    matches = np.flatnonzero(on[:, order].all(1)).tolist() if order else []
    return {"units": order, "off_elsewhere": [round(float(off_rate[u]), 4) for u in order], "matches": matches}
