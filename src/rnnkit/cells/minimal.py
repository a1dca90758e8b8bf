"""What minGRU and minLSTM share: gates that read x_t only, so h_t = a_t ⊙ h_(t-1) + b_t.

Feng et al., "Were RNNs All We Needed?" (2024). Without h_(t-1) inside the gates there is no hidden-to-hidden
weight: one ``weight_ih`` (G·H, D) stacks every block (the gate order is the subclass's ``gate_names``) and
``bias_ih`` (G·H,) its bias. A cell runs in one of two forms (``form``):

    "plain"  the paper's minGRU / minLSTM: the candidate h̃_t = Linear_h(x_t) is used as it is.
    "log"    the paper's log-space form: the candidate goes through g, so every b_t and state is positive
             (from a non-negative h0) and the sequence can be scanned on logarithms (``linear_scan.scan_log``):
                 g(x) = x + 0.5 if x ≥ 0 else σ(x)        (continuous, increasing, positive)
                 log g(x) = log(x + 0.5) if x ≥ 0 else −softplus(−x)

Two ways to run a cell: ``cell(x_t, h_prev) -> h_t`` (one step, for generation; ``step`` is the equations as
written, the ground truth) and ``cell.sequence(x, h0, lengths)`` (a whole time-major sequence by the scan).
A whole sequence runs by one of ``SEQUENCE_BACKENDS``:
    "scan"       Linear(x) for every step in one matrix product, then h_t = (1 − σ(u_t)) ⊙ h_(t-1) + σ(u_t) ⊙ h̃_t
                 by ``linear_scan.scan_gated`` (either form: nothing is divided, no logarithm is taken)
    "log-scan"   Linear(x) likewise, then the paper's log-space scan ``linear_scan.scan_log`` (the "log" form
                 only: it needs b_t > 0). On a CPU torch's logcumsumexp over time is slow (measured 0.4 s for
                 T·B·H = 128·64·384 on one Zen 3 core, against about 0.03 s for the "scan" recurrence), so the
                 layers' "auto" takes it on other devices only
    "reference"  ``step`` in a loop over time: the ground truth
The layers (``rnnkit.layers.minimal``) add "fused": ``gated_inputs`` as for "scan", then the recurrence in C++
(``rnnkit.engine.fused.gated_scan``); a cell does not import the engine, so its own ``sequence`` has no "fused".

Shape legend:
    B  batch size     T  time steps     D  input features     H  hidden size     G  blocks in weight_ih
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnkit.cells.base import Cell, Params, linear
from rnnkit.cells.linear_scan import scan_gated, scan_log
from rnnkit.lengths import check_lengths, last_valid, step_mask
from rnnkit.validation import check_choice

FORMS = ("plain", "log")
SEQUENCE_BACKENDS = ("scan", "log-scan", "reference")


def g(x: Tensor) -> Tensor:
    """The paper's positive activation for the log-space form: x + 0.5 for x ≥ 0, σ(x) below."""
    return torch.where(x >= 0, F.relu(x) + 0.5, torch.sigmoid(x))


def log_g(x: Tensor) -> Tensor:
    """log g(x), without forming g(x) first (−softplus(−x) = log σ(x) stays finite for very negative x)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def check_backend_for_form(backend: str, form: str) -> str:
    """The log-space scan takes logarithms of b_t: only the "log" form keeps them positive."""
    if backend == "log-scan" and form != "log":
        raise ValueError(f"backend 'log-scan' needs form='log' (b_t > 0), got form={form!r}")
    return backend


class MinimalCell(Cell):
    """Base for cells whose state update is h_t = a_t ⊙ h_(t-1) + b_t with a_t, b_t from x_t alone.

    Both cells blend: h_t = (1 − σ(u_t)) ⊙ h_(t-1) + σ(u_t) ⊙ h̃_t, with a gate logit u_t of their own.
    Subclasses set ``gates``/``gate_names`` and implement ``step`` (the equations) and ``gate_logit``
    ((u_t, Linear_h(x_t)) from the projection Linear(x_t) (…, G·H)), from which the scans are built.
    """

    state_count = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 own_parameters: bool = True, form: str = "plain"):
        form = check_choice("form", form, FORMS)
        super().__init__(input_size, hidden_size, bias, device, dtype, own_parameters=own_parameters)
        self.form = form

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """``weight_ih`` (G·H, D) and ``bias_ih`` (G·H,): no hidden-to-hidden tensors."""
        shapes = {"weight_ih": (self.gates * self.hidden_size, self.input_size)}
        if self.bias:
            shapes["bias_ih"] = (self.gates * self.hidden_size,)
        return shapes

    def candidate(self, k_h: Tensor) -> Tensor:
        """h̃_t: the projection itself ("plain") or g of it ("log")."""
        return g(k_h) if self.form == "log" else k_h

    def projections(self, x: Tensor, p: Params) -> tuple[Tensor, ...]:
        """Linear(x) split into the G blocks, in ``gate_names`` order."""
        return linear(x, p["weight_ih"], p.get("bias_ih")).chunk(self.gates, dim=-1)

    def gate_logit(self, proj: Tensor) -> tuple[Tensor, Tensor]:
        """(u_t, Linear_h(x_t)) such that σ(u_t) is the weight of the candidate."""
        raise NotImplementedError

    def log_coefficients(self, proj: Tensor) -> tuple[Tensor, Tensor]:
        """(log a_t, log b_t) = (−softplus(u_t), −softplus(−u_t) + log g(Linear_h(x_t))), the "log" form's."""
        u, k_h = self.gate_logit(proj)
        return -F.softplus(u), -F.softplus(-u) + log_g(k_h)

    # -- a whole sequence -------------------------------------------------------
    def projection(self, x: Tensor, p: Params) -> Tensor:
        """Every step's Linear(x) in one matrix product, in x's dtype.

        Under autocast the product runs in the low precision, but the recurrence stays in the input's dtype: a
        bfloat16 state would gather rounding error over T steps, and a state carried to the next window must
        match that window's input.
        """
        return linear(x, p["weight_ih"], p.get("bias_ih")).to(x.dtype)

    def gated_inputs(self, x: Tensor, p: Params) -> tuple[Tensor, Tensor]:
        """(u, h̃) for every step of x (T, B, D): the gate logits and the candidates the gated scan blends."""
        u, k_h = self.gate_logit(self.projection(x, p))
        return u, self.candidate(k_h)

    def run_sequence(self, x: Tensor, h0: Tensor | None, p: Params, lengths: Tensor | None = None,
                     backend: str = "scan") -> tuple[Tensor, Tensor]:
        """x (T, B, D), h0 (B, H) or None → outputs (T, B, H) zero past each length, h_n (B, H) at each own end."""
        if backend == "reference":
            return self._step_loop(x, h0, p, lengths)
        if backend == "log-scan":
            check_backend_for_form(backend, self.form)
            h = scan_log(*self.log_coefficients(self.projection(x, p)), h0)
        else:
            h = scan_gated(*self.gated_inputs(x, p), h0)
        # The scan is causal: steps past a row's length never reach its earlier states, so the row's final
        # state is read at its own last step, and its outputs past the length are set to zero.
        if lengths is None:
            return h, h[-1]
        return h * step_mask(lengths, h.shape[0], h.device), last_valid(h, lengths)

    def _step_loop(self, x: Tensor, h0: Tensor | None, p: Params, lengths: Tensor | None):
        state = (h0,) if h0 is not None else self.initial_state(x.shape[1], x)
        mask = None if lengths is None else step_mask(lengths, x.shape[0], x.device)
        outputs = []
        for t, x_t in enumerate(x.unbind(0)):
            h, new_state = self.step(x_t, state, p)
            if mask is not None:  # a row that has ended holds its state and outputs zeros
                new_state = (torch.where(mask[t], new_state[0], state[0]),)
                h = torch.where(mask[t], h, torch.zeros_like(h))
            outputs.append(h)
            state = new_state
        return torch.stack(outputs), state[0]

    def sequence(self, x: Tensor, h0: Tensor | None = None, lengths=None,
                 backend: str = "scan") -> tuple[Tensor, Tensor]:
        """Standalone whole-sequence call: x (T, B, D) time-major → (outputs (T, B, H), h_n (B, H)).

        ``backend``: one of ``SEQUENCE_BACKENDS`` (see the module docstring).
        """
        check_choice("backend", backend, SEQUENCE_BACKENDS)
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x must be (T, B, {self.input_size}), got shape {tuple(x.shape)}")
        if h0 is not None and tuple(h0.shape) != (x.shape[1], self.hidden_size):
            raise ValueError(f"h0 must have shape {(x.shape[1], self.hidden_size)}, got {tuple(h0.shape)}")
        lengths = check_lengths(lengths, x.shape[1], x.shape[0])
        return self.run_sequence(x, h0, self.own_params(), lengths, backend)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", form={self.form!r}" if self.form != "plain" else "")

