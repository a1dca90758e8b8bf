# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Inside the gates
#
# An LSTM passes two states along, the cell state C and the hidden vector H, and three sigmoid **gates** decide, at
# every step and for every unit, what to forget from C (f), what to write into it (i, with the candidate g) and what
# to show of it as H (o). A GRU has two gates: reset (r) and update (z), with the candidate n. The lesson says the
# components of C act like flags that can be switched on and off; here we look at them.
#
# Every rnnkit layer has `layer.trace(x, lengths=...)`: it runs the readable reference loop and records, per layer
# and direction, every step's hidden state, cell state and gate activations. We train two small character language
# models on the bundled Shakespeare (an LSTM and a GRU, a few hundred steps each; `RNNKIT_TUTORIAL_FULL=1` trains
# ten times longer), trace them over a sentence, and finish with the explorer page that `rnnkit inspect` writes.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import Image, display

from rnnkit.api.language_model import LM_TRAIN_DEFAULTS, train_language_model
from rnnkit.cli.main import main as rnnkit_cli
from rnnkit.data.bundled import load_bundled
from rnnkit.models.config import LanguageModelConfig
from rnnkit.training.config import TrainConfig

FULL = os.environ.get("RNNKIT_TUTORIAL_FULL") == "1"
work = Path(tempfile.mkdtemp(prefix="rnnkit-tutorial-"))


def train(cell):
    model = LanguageModelConfig(cell=cell, hidden_size=64, num_layers=1, embedding_dim=32, dropout=0.0)
    train = TrainConfig(**{**LM_TRAIN_DEFAULTS, "batch_size": 32, "max_steps": 2500 if FULL else 250,
                           "eval_every": 250, "warmup": 20.0, "progress": False})
    lm, summary = train_language_model("shakespeare", work / cell, model=model, train=train, bptt=64)
    return lm


lstm_lm, gru_lm = train("lstm"), train("gru")

# %% [markdown]
# ## Tracing a sentence
#
# The language model's first recurrent layer is an ordinary `rnnkit.LSTM`; we embed the characters and call its
# `trace`. Each entry is (batch, time, units), in token order.

# %%
SENTENCE = "KING. What say you, my lord? I will not go.\nQUEEN. Then stay."


def trace(lm, text):
    ids = lm.encode(text).unsqueeze(0)
    layer = lm.model.layers[0]
    with torch.no_grad():
        return layer.trace(lm.model.embedding(ids))


lstm_trace = trace(lstm_lm, SENTENCE)
print(lstm_lm.model.layers[0])
print({name: tuple(series.shape) for name, series in lstm_trace[0, 0].items()})


# %%
def heatmaps(steps, names, title):
    fig, axes = plt.subplots(len(names), 1, figsize=(11, 1.9 * len(names)), sharex=True)
    for ax, name in zip(axes, names, strict=True):
        values = steps[name][0, :, :24].T  # the first 24 units, one row each
        ax.imshow(values, aspect="auto", cmap="viridis", vmin=0 if name in "ifozr" else -1, vmax=1)
        ax.set_ylabel(name, rotation=0, labelpad=12)
        ax.set_yticks([])
    axes[-1].set_xticks(range(len(SENTENCE)))
    axes[-1].set_xticklabels(["⏎" if ch == "\n" else ch for ch in SENTENCE], fontsize=7, family="monospace")
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


heatmaps(lstm_trace[0, 0], ["i", "f", "o", "c"], "LSTM: input, forget and output gates, cell state (24 units)")

# %% [markdown]
# Gates near 1 (yellow) let information through, near 0 (dark) block it. Look for rows of f that stay near 1
# across the sentence: those components of C are kept from step to step and change slowly, the long memory. Rows
# that change at spaces, punctuation or the line break react to word and line boundaries, the flags the lesson
# describes; a model trained this briefly has only a few. The GRU has no separate cell state; its update gate z
# decides, per unit, how much of the old state to keep:

# %%
gru_trace = trace(gru_lm, SENTENCE)
heatmaps(gru_trace[0, 0], ["r", "z", "h"], "GRU: reset and update gates, hidden state (24 units)")

# %% [markdown]
# ## A unit that tracks something
#
# Which LSTM cell-state unit follows a simple property of the text best? We score every unit by its correlation,
# over a longer passage, with "the current character is inside a word" (a letter) and plot the best one.

# %%
text = load_bundled("shakespeare").valid[5000:7000]  # two thousand characters of Macbeth, never trained on
steps = trace(lstm_lm, text)[0, 0]
in_word = torch.tensor([ch.isalpha() for ch in text], dtype=torch.float)


def correlation(series, target):
    series, target = series - series.mean(0), target - target.mean()
    return (series * target[:, None]).sum(0) / (series.norm(dim=0) * target.norm() + 1e-9)


scores = correlation(steps["c"][0], in_word)
unit = scores.abs().argmax().item()
print(f"unit {unit}: correlation {scores[unit]:+.2f} with 'inside a word'")
fig, ax = plt.subplots(figsize=(11, 2.2))
ax.plot(trace(lstm_lm, SENTENCE)[0, 0]["c"][0, :, unit], marker=".")
ax.set_xticks(range(len(SENTENCE)))
ax.set_xticklabels(["⏎" if ch == "\n" else ch for ch in SENTENCE], fontsize=7, family="monospace")
ax.set_ylabel(f"c[{unit}]")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The explorer page
#
# `rnnkit inspect MODEL TEXT --out NAME` reads a text with a saved model and writes `NAME.png` and `NAME.html`: per
# token, the prediction so far, every layer's hidden states as a heatmap, the text coloured by one unit and the
# gates' saturation. The HTML file is the explorer page of `rnnkit serve` with the data inlined, so it opens
# without a server. Here is the PNG:

# %%
rnnkit_cli(["inspect", str(work / "lstm"), SENTENCE, "--out", str(work / "inspect")])
display(Image(filename=str(work / "inspect.png"), width=900))
