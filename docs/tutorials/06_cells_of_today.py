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
# # 6. Recurrent cells of today: minGRU and minLSTM
#
# Every cell so far reads the previous state inside its gates: the GRU's update gate is
# z_t = σ(W_z·x_t + H_z·h_(t-1) + b_z). That is why training walks the sentence one step at a time, and why each
# step pays an H×H matrix product. Feng et al., "Were RNNs All We Needed?" (2024), take h_(t-1) out of the gates:
#
#     minGRU:   z_t = σ(Linear_z(x_t))          h̃_t = Linear_h(x_t)
#               h_t = (1 − z_t) ⊙ h_(t-1) + z_t ⊙ h̃_t
#
#     minLSTM:  f_t = σ(Linear_f(x_t))   i_t = σ(Linear_i(x_t))   h̃_t = Linear_h(x_t)
#               f'_t = f_t / (f_t + i_t)   i'_t = i_t / (f_t + i_t)
#               h_t = f'_t ⊙ h_(t-1) + i'_t ⊙ h̃_t
#
# Both are h_t = a_t ⊙ h_(t-1) + b_t with a_t and b_t computed from x_t alone: every projection becomes one
# large matrix product over all time steps, and the recurrence left over is elementwise (a *scan*). This tutorial
# writes the minGRU step by hand, checks it against `rnnkit.MinGRUCell`, shows that the scan and the step loop
# give the same numbers (padding included), and measures what it buys against the GRU.
#
# It runs on a CPU in well under a minute; `RNNKIT_TUTORIAL_FULL=1` times larger sizes.

# %%
import os
import time

import matplotlib.pyplot as plt
import torch

import rnnkit

FULL = os.environ.get("RNNKIT_TUTORIAL_FULL") == "1"
_ = torch.manual_seed(0)

# %% [markdown]
# ## The step by hand, and the cell
#
# `MinGRUCell` keeps its two projections in one matrix, `weight_ih` (2H, D), rows in the order (z, h), and has no
# hidden-to-hidden weights at all.

# %%
D, H = 5, 4
cell = rnnkit.MinGRUCell(D, H).double()
W_z, W_h = cell.weight_ih.detach().chunk(2)
b_z, b_h = cell.bias_ih.detach().chunk(2)


def min_gru_step(x, h_prev):
    z = torch.sigmoid(x @ W_z.T + b_z)  # the gate reads x_t only
    h_tilde = x @ W_h.T + b_h  # the candidate too
    return (1 - z) * h_prev + z * h_tilde


xs = torch.randn(6, 1, D, dtype=torch.float64)  # six steps, batch 1
h_hand = h_cell = torch.zeros(1, H, dtype=torch.float64)
for x in xs:
    h_hand = min_gru_step(x, h_hand)
    h_cell = cell(x, h_cell)
print("largest difference, by hand vs MinGRUCell:", (h_hand - h_cell).abs().max().item())

# %% [markdown]
# ## The scan equals the step loop
#
# A layer runs the same cell over a whole batch of sequences. `backend="reference"` loops over time one step at a
# time, calling the cell; `backend="scan"` computes all the projections in one product and then the recurrence
# h_t = a_t ⊙ h_(t-1) + b_t as a scan. Sequences of different lengths are handled as everywhere in rnnkit: pass
# `lengths=`, and a row that has ended holds its state.

# %%
layer = rnnkit.MinGRU(D, H, num_layers=2, bidirectional=True, batch_first=True).double()
x = torch.randn(3, 7, D, dtype=torch.float64)
lengths = torch.tensor([7, 3, 5])

out_scan, h_scan = layer(x, lengths=lengths)
layer.backend = "reference"
out_loop, h_loop = layer(x, lengths=lengths)
layer.backend = "scan"
print("outputs:", (out_scan - out_loop).abs().max().item(), " final states:", (h_scan - h_loop).abs().max().item())

# Padding never changes a result: change what lies past each length and nothing moves.
noisy = x.clone()
for row, n in enumerate(lengths.tolist()):
    noisy[row, n:] = 1e3 * torch.randn_like(noisy[row, n:])
out_noisy, h_noisy = layer(noisy, lengths=lengths)
print("with noise in the padding:", (out_noisy - out_scan).abs().max().item(), (h_noisy - h_scan).abs().max().item())

# %% [markdown]
# ## What it buys: training speed against the GRU
#
# The same width, the same batch, one training step (forward and backward) timed side by side in this process.
# The GRU here is rnnkit's own (`backend="auto"`, its fastest engine on this machine) and torch.nn's. A GRU layer
# does about 3H·D + 3H·H multiply-adds per token, a minGRU layer 2H·D: with D = H about a third of the work, so
# expect a ratio of about 2-3 where the products dominate. At batch 1 fixed per-call costs weigh more and the
# order can change. The numbers are this build's, on whatever machine built the site (a busy one scatters them).

# %%
def tokens_per_second(layer, batch, steps, repeats):
    x = torch.randn(batch, steps, layer.input_size, requires_grad=True)
    best = float("inf")
    for _ in range(repeats + 1):  # the first call warms up (and tunes `auto`)
        start = time.perf_counter()
        out, _ = layer(x)
        out.sum().backward()
        best = min(best, time.perf_counter() - start)
    return batch * steps / best


hidden = 384 if FULL else 128
sizes = [(1, 128), (16, 128), (64, 128)] if FULL else [(1, 64), (16, 64)]
rows = []
for batch, steps in sizes:
    layers = {
        "MinGRU": rnnkit.MinGRU(hidden, hidden, batch_first=True),
        "rnnkit GRU": rnnkit.GRU(hidden, hidden, batch_first=True),
        "torch.nn GRU": torch.nn.GRU(hidden, hidden, batch_first=True),
    }
    speed = {name: tokens_per_second(m, batch, steps, repeats=5 if FULL else 3) for name, m in layers.items()}
    rows.append((batch, steps, speed))
    print(f"batch {batch:3d}, {steps} steps: " + ", ".join(f"{n} {s:,.0f} tokens/s" for n, s in speed.items())
          + f"  → MinGRU / rnnkit GRU {speed['MinGRU'] / speed['rnnkit GRU']:.1f}x")

# %%
names = list(rows[0][2])
plt.figure(figsize=(6, 3))
for i, name in enumerate(names):
    plt.bar([r + 0.27 * i for r in range(len(rows))], [speed[name] for _, _, speed in rows], width=0.27, label=name)
plt.xticks([r + 0.27 for r in range(len(rows))], [f"B {b}, T {t}" for b, t, _ in rows])
plt.ylabel("training tokens/s")
plt.title(f"hidden {hidden}, one layer")
plt.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Generation: one step at a time
#
# Once trained, a minGRU generates like any recurrent network: the state is carried from one token to the next,
# and each step costs only the two small projections. Stepping the layer one token at a time gives the same states
# as the whole-sequence call, which is what a language model's `generate` relies on.

# %%
layer = rnnkit.MinGRU(D, H, num_layers=2).double()
x = torch.randn(9, 2, D, dtype=torch.float64)
whole, h_whole = layer(x)
h = None
for t in range(x.shape[0]):
    step_out, h = layer(x[t : t + 1], h)
print("stepped vs whole sequence:", (step_out[0] - whole[-1]).abs().max().item(), (h - h_whole).abs().max().item())

# %% [markdown]
# In the pipelines the new cells are one option away: `rnnkit train --cell mingru`, `rnnkit train-lm --cell
# minlstm`. The whole measured comparison (hidden 384, batch 1-64, up to 2,048 steps, memory against length) is
# `benchmarks/mincells.py`, with its figures on the [benchmarks page](../benchmarks.md).
