"""``rnnkit inspect``'s files: the explorer's views as one PNG (matplotlib) and as a self-contained HTML page.

The HTML file is the explorer page itself with its CSS, its JavaScript and the inspection data
inlined: it opens from disk, with no server and nothing loaded from elsewhere.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator

from rnnkit.outputs import write_atomically, write_text_atomically
from rnnkit.saved.kinds import CLASSIFIER, LANGUAGE_MODEL
from rnnkit.serve.inspection import SIGMOID_GATES, span_units
from rnnkit.serve.security import inline_policy, script_json

STATIC = Path(__file__).with_name("static")
PALETTE = ["#2d6cdf", "#d9480f", "#2b8a3e", "#9c36b5", "#e8590c", "#0c8599", "#c2255c", "#5c940d", "#862e9c",
           "#495057"]


def most_variable_unit(result: dict, layer: int = 0, series: str = "h") -> int:
    values = np.asarray(result["layers"][layer]["series"][series])
    return int(values.var(0).argmax())


def explorer_page(result: dict, model_info: dict, text: str, span: tuple[int, int] | None = None,
                  unit: int | None = None) -> str:
    """The explorer page with its CSS, scripts and ``result`` inlined, under a policy that runs only those."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    css = (STATIC / "explorer.css").read_text(encoding="utf-8")
    scripts = {name: (STATIC / name).read_text(encoding="utf-8") for name in ("draw.js", "explorer.js")}
    embedded = {"models": [model_info], "inspect": result, "text": text, "span": list(span) if span else None,
                "unit": most_variable_unit(result) if unit is None else unit}
    # The page's own edits first, the user's data last: no later replacement can match inside the data.
    page = page.replace('<a class="muted right" href="docs">API docs</a>', "")
    page = page.replace('<link rel="stylesheet" href="static/explorer.css">', f"<style>\n{css}</style>")
    page = page.replace('<script src="static/draw.js"></script>', f"<script>\n{scripts['draw.js']}</script>")
    # Text and labels are the user's: script_json leaves no "<", ">" or "&" that could end the element.
    embedded_data = f"<script>window.RNNKIT_EMBEDDED = {script_json(embedded)};</script>\n"
    page = page.replace('<script src="static/explorer.js"></script>',
                        f"{embedded_data}<script>\n{scripts['explorer.js']}</script>")
    # Opened from disk there are no response headers: the policy travels in the page, ahead of what it covers.
    policy = html.escape(inline_policy(page, more="img-src data:"), quote=True)
    charset = '<meta charset="utf-8">'
    return page.replace(charset, f'{charset}\n<meta http-equiv="Content-Security-Policy" content="{policy}">', 1)


def write_html(result: dict, model_info: dict, text: str, path: str | Path,
               span: tuple[int, int] | None = None, unit: int | None = None) -> Path:
    return write_text_atomically(path, explorer_page(result, model_info, text, span, unit))


def _literal(text: str) -> str:
    """User text (tokens, labels, the model's name) as matplotlib shows it: a pair of "$" would start its
    mathtext, which draws "$x$" as math and fails the whole figure on "$\\frac$"; "\\$" is a plain dollar."""
    return text.replace("$", r"\$")


def _token_label(token: str) -> str:
    return _literal(json.dumps(token, ensure_ascii=False)[1:-1])


def _prediction(ax, result: dict) -> None:
    tokens = result["tokens"]
    x = np.arange(len(tokens))
    if result["kind"] == CLASSIFIER:
        probs = np.asarray(result["probabilities"])
        for c, label in enumerate(result["labels"]):
            ax.plot(x, probs[:, c], marker="o" if len(x) < 40 else None, ms=3, color=PALETTE[c % len(PALETTE)],
                    label=f"{_literal(label)} {probs[-1, c]:.3f}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("p(class)")
        ax.set_title("class probabilities as the network reads (each step: the text cut there)", loc="left")
        ax.legend(loc="upper left", fontsize=8, ncol=min(5, len(result["labels"])), frameon=False)
    else:
        p_next = [p.get("p_next", np.nan) for p in result["predictions"]]
        ax.bar(x, p_next, color="#2d6cdf")
        ax.set_ylim(0, 1.15)  # room for the top guesses inside the axes, under the title
        ax.set_ylabel("p(next token)")
        ax.set_title("probability the model gave the token that came next; top guess above each bar", loc="left")
        if len(x) <= 60:
            for t, pred in enumerate(result["predictions"]):
                ax.text(t, 1.03, _token_label(pred["top"][0]["token"]), ha="center", va="bottom", fontsize=7,
                        color="#67707c")
    _token_axis(ax, tokens)


def _token_axis(ax, tokens: list[str]) -> None:
    step = max(1, int(np.ceil(len(tokens) / 60)))
    ax.set_xticks(range(0, len(tokens), step))
    ax.set_xticklabels([_token_label(tokens[t]) for t in range(0, len(tokens), step)], rotation=90, fontsize=7)
    ax.set_xlim(-0.5, len(tokens) - 0.5)


def _heatmap(ax, result: dict, view: dict, series: str):
    values = np.asarray(view["series"][series]).T  # units × tokens
    if series in SIGMOID_GATES:
        image = ax.imshow(values, aspect="auto", cmap="Purples", vmin=0, vmax=1, interpolation="nearest")
    else:
        lim = max(1.0, float(np.abs(values).max()))
        image = ax.imshow(values, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_ylabel("unit")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{series}: layer {view['layer']} {view['direction']} (units × tokens)", loc="left")
    _token_axis(ax, result["tokens"])
    return image


TEXT_WIDTH = 110  # characters a line of coloured text holds


def _layout(result: dict):
    """(token index, shown text, column, line) of each token, wrapped at TEXT_WIDTH characters."""
    char = result["kind"] == LANGUAGE_MODEL and all(len(t) <= 1 for t in result["tokens"])
    x = y = 0
    for t, token in enumerate(result["tokens"]):
        shown = "↵" if token == "\n" else token
        n = len(shown) + (0 if char else 1)
        if x + n > TEXT_WIDTH:
            x, y = 0, y + 1
        yield t, shown, x, y
        x, y = (0, y + 1) if token == "\n" else (x + n, y)


def _text_lines(result: dict) -> int:
    return 1 + max(y for *_, y in _layout(result))


def _coloured_text(ax, result: dict, values: np.ndarray, title: str, span=None, matches=()) -> None:
    """Tokens laid out as text, each on a background coloured by ``values`` (Karpathy-style)."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("RdBu_r")
    lim = max(1.0, float(np.abs(values).max()))
    ax.set_axis_off()
    ax.set_title(title, loc="left")
    lines = _text_lines(result)
    for t, shown, x, y in _layout(result):
        colour = cmap(0.5 + 0.5 * float(values[t]) / lim)
        edge = "#111111" if span and span[0] <= t < span[1] else ("#e39b00" if t in matches else "none")
        ax.text(x / TEXT_WIDTH, 1 - (y + 0.5) / lines, _literal(shown), family="monospace", fontsize=8, va="center",
                bbox={"boxstyle": "square,pad=0.1", "facecolor": colour, "edgecolor": edge, "linewidth": 1.2})


def _saturation(fig, spec, view: dict) -> None:
    gates = list(view["saturation"])
    if not gates:
        return
    sub = spec.subgridspec(1, len(gates), wspace=0.35)
    for i, gate in enumerate(gates):
        ax = fig.add_subplot(sub[0, i])
        sat = view["saturation"][gate]
        ax.scatter(sat["right"], sat["left"], s=8, alpha=0.6, color="#2d6cdf")
        ax.plot([0, 1], [1, 0], color="#dddddd", lw=0.8)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_aspect("equal")
        ax.set_title(f"gate {gate}", fontsize=9)
        ax.set_xlabel("right-saturated", fontsize=7)
        if i == 0:
            ax.set_ylabel("left-saturated", fontsize=7)
        ax.tick_params(labelsize=7)


def write_png(result: dict, path: str | Path, unit: int | None = None, span: tuple[int, int] | None = None,
              threshold: float = 0.3) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = result["layers"][:4]
    h0 = np.asarray(views[0]["series"]["h"])
    unit = most_variable_unit(result) if unit is None else unit
    if not 0 <= unit < h0.shape[1]:
        raise ValueError(f"unit must be in [0, {h0.shape[1] - 1}], got {unit}")
    found = span_units(h0, span[0], span[1], threshold) if span else None
    text_rows = 0.35 + 0.25 * _text_lines(result)
    rows = [2.2] + [2.6] * len(views) + [text_rows] + ([text_rows] if found else []) + [2.2]
    fig = plt.figure(figsize=(max(10, min(26, 0.2 * len(result["tokens"]) + 4)), sum(rows) * 1.45))
    spec = fig.add_gridspec(len(rows), 1, height_ratios=rows, hspace=0.9, top=0.96, bottom=0.03)
    first_ax = fig.add_subplot(spec[0])
    _prediction(first_ax, result)
    kind = result["kind"].replace("_", " ")
    heading = f"{_literal(result.get('model', ''))} ({kind}, {len(result['tokens'])} tokens): "
    first_ax.set_title(heading + first_ax.get_title(loc="left"), loc="left")
    for i, view in enumerate(views):
        ax = fig.add_subplot(spec[1 + i])
        fig.colorbar(_heatmap(ax, result, view, "h"), ax=ax, fraction=0.02, pad=0.01)
    row = 1 + len(views)
    first = views[0]
    _coloured_text(fig.add_subplot(spec[row]), result, h0[:, unit],
                   f"text coloured by h[{unit}] of layer {first['layer']} {first['direction']} (blue low, red high)")
    row += 1
    if found:
        what = (f"units {found['units']} are on (> {threshold}) over tokens [{span[0]}, {span[1]}) and off elsewhere "
                f"{[round(r, 2) for r in found['off_elsewhere']]}; all on at the tokens framed in orange"
                if found["units"] else f"no unit is above {threshold} over all of tokens [{span[0]}, {span[1]})")
        values = h0[:, found["units"]].mean(1) if found["units"] else np.zeros(len(h0))
        _coloured_text(fig.add_subplot(spec[row]), result, values, what, span, set(found["matches"]))
        row += 1
    _saturation(fig, spec[row], first)
    try:
        # The format is given, not read from the temporary's name; a full disk leaves no partial PNG.
        return write_atomically(path, lambda temporary: fig.savefig(temporary, dpi=110, bbox_inches="tight",
                                                                    format="png"))
    finally:
        plt.close(fig)
