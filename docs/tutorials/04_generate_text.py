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
# # 4. Generate text
#
# A recurrent network that reads a text one character at a time can also be asked, at every step, which character
# comes next: a **character language model**. Trained on Shakespeare (bundled with rnnkit), it writes
# Shakespeare-like text by sampling one character, feeding it back in, and sampling the next.
#
# The quick run below trains a small GRU for a few hundred steps; the text it writes is still mostly gibberish
# with the right shape (names, line breaks, short words). `RNNKIT_TUTORIAL_FULL=1` trains the default model
# (what `rnnkit train-lm` runs: a GRU of 2 × 384 units for 30 minutes), which ends near 2.0-2.1 bits per character
# on the test text, depending on how fast the CPU is (docs/benchmarks.md).

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from rnnkit.api.language_model import LM_TRAIN_DEFAULTS, train_language_model
from rnnkit.data.bundled import load_bundled
from rnnkit.models.config import LanguageModelConfig
from rnnkit.training.config import TrainConfig
from rnnkit.training.runlog import read_log

FULL = os.environ.get("RNNKIT_TUTORIAL_FULL") == "1"
shakespeare = load_bundled("shakespeare")
print(f"{len(shakespeare.train):,} training characters; validation: {shakespeare.sources['valid']}")
print(shakespeare.valid[5000:5300])

# %% [markdown]
# ## Train
#
# `train_language_model` is the Python face of `rnnkit train-lm`. It cuts the text into 64 parallel streams,
# trains with truncated backpropagation through time (windows of `bptt` characters, the state carried from one
# window to the next), checks validation bits per character as it goes, and keeps the best model.

# %%
out = Path(tempfile.mkdtemp(prefix="rnnkit-tutorial-")) / "lm"
if FULL:
    model, train = LanguageModelConfig(), TrainConfig(**LM_TRAIN_DEFAULTS)
else:
    model = LanguageModelConfig(hidden_size=128, num_layers=1, embedding_dim=32, dropout=0.0)
    train = TrainConfig(**{**LM_TRAIN_DEFAULTS, "batch_size": 32, "max_steps": 300, "eval_every": 100,
                           "warmup": 20.0, "progress": False})
lm, summary = train_language_model("shakespeare", out, model=model, train=train, bptt=64)
summary

# %% [markdown]
# ## Bits per character
#
# The model's loss is the cross-entropy of the next character, in nats; divided by ln 2 it is **bits per
# character**: how many yes/no questions, on average, the model still needs to guess each next character. A model
# that knew nothing beyond the alphabet's size would need log2(vocabulary) bits; a good one needs fewer than 2.

# %%
log = [row for row in read_log(out / "log.jsonl") if "valid_bits_per_char" in row]
plt.figure(figsize=(6, 3))
plt.plot([row["step"] for row in log], [row["valid_bits_per_char"] for row in log], marker="o")
plt.xlabel("training step")
plt.ylabel("validation bits per character")
plt.tight_layout()
plt.show()

excerpt = shakespeare.test[:20000]
print("test excerpt (Hamlet):", lm.evaluate_text(excerpt))

# %% [markdown]
# ## Temperature and top-p
#
# At each step the model gives a probability for every character. **Temperature** divides the logits before the
# softmax: below 1 the likely characters become likelier (safer, more repetitive text), above 1 the distribution
# flattens (more surprises, more misspellings). **Top-p** (nucleus sampling) keeps only the smallest set of
# characters whose probabilities add up to p and samples among those, cutting off the long tail of unlikely
# characters. The seed makes a sample repeatable.

# %%
for options in (dict(temperature=0.5), dict(temperature=1.0), dict(temperature=1.0, top_p=0.9)):
    print(f"--- {options}")
    print("ROMEO." + lm.generate("ROMEO.", max_tokens=200, seed=1, **options))

# %% [markdown]
# `generate_iter` yields the text as it is sampled, which is how `rnnkit generate` and the HTTP server stream it:

# %%
for piece in lm.generate_iter("KING.\n", max_tokens=80, temperature=0.8, seed=2):
    print(piece, end="", flush=True)
