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
# # 1. From the equation to a cell
#
# The lesson's simple recurrent network reads a sentence one token at a time. Token i arrives as a vector X_i
# (its embedding), and the network keeps a **state** S that it feeds back in with the next token:
#
#     S_i = σ(W·X_i + H·S_(i-1) + b)
#
# W maps the input to the state, H maps the previous state to the next, and the same W, H and b are used at every
# step: the "chain of blocks that share weights". This tutorial writes that equation by hand, checks it against
# `rnnkit.RNNCell` and `torch.nn.RNNCell`, and then shows why such a chain forgets: its gradients vanish.
#
# It runs on a CPU in seconds; nothing here depends on `RNNKIT_TUTORIAL_FULL`.

# %%
import matplotlib.pyplot as plt
import torch

import rnnkit

_ = torch.manual_seed(0)

# %% [markdown]
# ## The equation, in a few lines
#
# One step is one line. A sequence is a loop over the steps, starting from a zero state.

# %%
input_size, hidden_size, steps = 5, 4, 6
W = torch.randn(hidden_size, input_size) * 0.5
H = torch.randn(hidden_size, hidden_size) * 0.5
b = torch.zeros(hidden_size)


def step(x, s):
    return torch.tanh(W @ x + H @ s + b)  # S_i = σ(W·X_i + H·S_(i-1) + b), σ = tanh


xs = torch.randn(steps, input_size)  # a "sentence" of six token vectors
s = torch.zeros(hidden_size)
by_hand = []
for x in xs:
    s = step(x, s)
    by_hand.append(s)
by_hand = torch.stack(by_hand)
by_hand

# %% [markdown]
# ## The same numbers from rnnkit.RNNCell and torch.nn.RNNCell
#
# `rnnkit.RNNCell` names W `weight_ih` and H `weight_hh`, and splits b into `bias_ih + bias_hh` as torch.nn does,
# so its state dict loads into `torch.nn.RNNCell` unchanged. Copy our W, H and b in and run both cells over the
# same six vectors.

# %%
cell = rnnkit.RNNCell(input_size, hidden_size)
with torch.no_grad():
    cell.weight_ih.copy_(W)
    cell.weight_hh.copy_(H)
    cell.bias_ih.copy_(b)
    cell.bias_hh.zero_()

torch_cell = torch.nn.RNNCell(input_size, hidden_size)
torch_cell.load_state_dict(cell.state_dict())  # the same keys and shapes


def run(c):
    h = torch.zeros(1, hidden_size)
    out = []
    for x in xs:
        h = c(x.unsqueeze(0), h)
        out.append(h[0])
    return torch.stack(out)


with torch.no_grad():
    from_rnnkit, from_torch = run(cell), run(torch_cell)
print("rnnkit vs by hand:  max |diff| =", (from_rnnkit - by_hand).abs().max().item())
print("torch  vs by hand:  max |diff| =", (from_torch - by_hand).abs().max().item())
print(cell.__doc__.splitlines()[0])

# %% [markdown]
# A layer runs the loop for you: `rnnkit.RNN` takes the whole sequence (here one sequence of six steps) and returns
# every step's state and the last one.

# %%
layer = rnnkit.RNN(input_size, hidden_size, batch_first=True)
layer.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
with torch.no_grad():
    out, h_n = layer(xs.unsqueeze(0))
print(out.shape, h_n.shape, "max |diff| =", (out[0] - by_hand).abs().max().item())

# %% [markdown]
# ## Why gradients vanish
#
# Training sends the error back through the chain (backpropagation through time). The gradient of the last state
# with respect to an early state is a product of one Jacobian per step, diag(1 - S_i²)·H, and a product of many
# such matrices shrinks geometrically when H is small or the tanh saturates. Below: the norm of the gradient of
# the last hidden state with respect to every input x_t, for a simple RNN, an LSTM and a GRU of the same size
# (untrained, default initialisation) on the same 60 random input vectors.


# %%
def gradient_norms(layer, T=60, size=32, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(1, T, size, requires_grad=True)
    out, _ = layer(x)
    out[0, -1].sum().backward()  # the last state's sensitivity to every input
    return x.grad[0].norm(dim=1)  # one norm per time step


T, size = 60, 32
curves = {}
for name, cls in (("simple RNN", rnnkit.RNN), ("LSTM", rnnkit.LSTM), ("GRU", rnnkit.GRU)):
    torch.manual_seed(1)
    curves[name] = gradient_norms(cls(size, size, batch_first=True), T, size)

fig, ax = plt.subplots(figsize=(7, 3.5))
for name, norms in curves.items():
    ax.semilogy(range(T), norms.detach(), label=name)
ax.set_xlabel("time step t of the input")
ax.set_ylabel("‖∂ last state / ∂ x_t‖")
ax.set_title("How much each input step still moves the last state")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# For the simple RNN the curve falls by orders of magnitude as t moves away from the end: the first tokens barely
# reach the last state, so training can hardly learn what depends on them. The gated cells keep a path along which
# the gradient shrinks much more slowly (the LSTM's forget gate multiplies its cell state by f instead of passing
# it through a matrix and a tanh). That is what the lesson means by explicit state management; tutorial 3 looks
# at the gates themselves.

# %%
for name, norms in curves.items():
    print(f"{name:10s} first step {norms[0].item():.2e}   last step {norms[-1].item():.2e}")
