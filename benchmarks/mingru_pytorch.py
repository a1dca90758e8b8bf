"""rnnkit.MinGRU against lucidrains' minGRU-pytorch (PyPI ``minGRU-pytorch``): same math, speed, memory.

minGRU-pytorch is not a dependency of rnnkit and never enters its tests: install it into a folder of its own,
without dependencies (it would pull another torch), and put that folder on PYTHONPATH for this script only:

    .venv/bin/pip install --no-deps --target /tmp/bench-site minGRU-pytorch==0.2.1 einops==0.8.1
    PYTHONPATH=src:/tmp/bench-site .venv/bin/python benchmarks/mingru_pytorch.py --repeats 3
    PYTHONPATH=src:/tmp/bench-site .venv/bin/python benchmarks/mingru_pytorch.py --check-only

(einops is the one dependency its metadata names besides torch; its ``minGRU`` module does not import it.)

Their ``minGRU(dim, expansion_factor=1.)`` is the paper's log-space minGRU (appendix B.3.1): one bias-free
``to_hidden_and_gate`` Linear(dim → 2·dim) whose output splits as (hidden, gate), the candidate g(hidden), the
gate σ(gate), and for T > 1 Heinsen's log-space scan (cumsum + logcumsumexp over time); with expansion 1 there is
no output projection (``to_out`` is Identity). Input and output are batch-first (B, T, D); it returns the
output alone, or (output, last state (B, 1, H)) with ``return_next_prev_hidden=True``; ``prev_hidden`` is an h0
of (B, 1, H), which must be positive (its logarithm is taken).

That is rnnkit's ``form="log"`` (g on the candidate), not the default ``form="plain"`` (the paper's plain
minGRU, candidate used as it is): the contender is ``rnnkit.MinGRU(H, H, bias=False, batch_first=True,
form="log")``, whose ``weight_ih_l0`` stacks the rows as ``MinGRUCell.gate_names`` (z; h), the reverse of
theirs. The check below copies their weight across, runs one float64 input through both (and through rnnkit's
plain form, to show it is another function) and asserts outputs, final states and gradients agree.

Speed and memory reuse ``benchmarks/mincells.py``'s helpers (contenders timed in turn in every round, the first
round dropped; tokens/s = B·T per call; saved-for-backward bytes through saved_tensors_hooks). rnnkit runs
``backend="auto"`` (on a CPU: the linear-space "scan", see ``rnnkit.layers.minimal``) and ``"log-scan"`` (the
same logcumsumexp scan as theirs).
"""

from __future__ import annotations

import importlib.metadata
import sys

import torch
from mincells import grid, grid_parser, saved_bytes, speeds

import rnnkit
from rnnkit.cells import MinGRUCell

PACKAGE = "minGRU-pytorch"
INSTALL = ("pip install --no-deps --target DIR minGRU-pytorch==0.2.1 einops==0.8.1, "
           "then PYTHONPATH=src:DIR (see this script's docstring)")
TOLERANCE = 1e-10  # float64


def their_class():
    """minGRU_pytorch.minGRU, or exit naming the install command."""
    try:
        from minGRU_pytorch import minGRU
    except ImportError as error:
        sys.exit(f"benchmarks/mingru_pytorch.py needs the {PACKAGE} package, which is not importable ({error}).\n"
                 f"It is not an rnnkit dependency; install it for this benchmark only: {INSTALL}")
    return minGRU


def rnnkit_mingru(hidden: int, backend: str = "auto", form: str = "log", dtype=None) -> rnnkit.MinGRU:
    """rnnkit's layer shaped like theirs: bias-free, batch-first, one layer, input size = hidden size."""
    return rnnkit.MinGRU(hidden, hidden, bias=False, batch_first=True, backend=backend, form=form, dtype=dtype)


def copy_their_weights(theirs, ours: rnnkit.MinGRU) -> None:
    """Their to_hidden_and_gate rows are (hidden; gate); rnnkit's weight_ih_l0 stacks them in gate_names order."""
    hidden, gate = theirs.to_hidden_and_gate.weight.detach().chunk(2, dim=0)
    blocks = {"z": gate, "h": hidden}
    with torch.no_grad():
        ours.weight_ih_l0.copy_(torch.cat([blocks[name] for name in MinGRUCell.gate_names]))


def their_weight_grad(ours: rnnkit.MinGRU) -> torch.Tensor:
    """rnnkit's weight gradient in their row order (hidden; gate)."""
    blocks = dict(zip(MinGRUCell.gate_names, ours.weight_ih_l0.grad.chunk(2, dim=0), strict=True))
    return torch.cat([blocks["h"], blocks["z"]])


def _differences(theirs, ours, x: torch.Tensor, h0: torch.Tensor) -> dict[str, float]:
    """max |Δ| of the outputs, final states and gradients (input, weight) for one float64 input."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    theirs.zero_grad()
    ours.zero_grad()
    out1, last1 = theirs(x1, prev_hidden=h0.transpose(0, 1), return_next_prev_hidden=True)
    out2, h_n = ours(x2, h0)
    (out1 * out1).sum().backward()
    (out2 * out2).sum().backward()
    return {"output": (out1 - out2).abs().max().item(),
            "final state": (last1[:, 0] - h_n[0]).abs().max().item(),
            "grad input": (x1.grad - x2.grad).abs().max().item(),
            "grad weight": (theirs.to_hidden_and_gate.weight.grad - their_weight_grad(ours)).abs().max().item()}


def same_math(batch: int = 3, steps: int = 64, hidden: int = 32) -> None:
    """Their minGRU and rnnkit's form="log" MinGRU, same weights, same float64 input: assert they agree."""
    torch.manual_seed(0)
    theirs = their_class()(hidden).double()
    if not isinstance(theirs.to_out, torch.nn.Identity):
        raise AssertionError(f"expected no output projection at expansion factor 1, got {theirs.to_out!r}")
    x = torch.randn(batch, steps, hidden, dtype=torch.float64)
    h0 = torch.rand(1, batch, hidden, dtype=torch.float64) + 0.1  # their h0 goes through a logarithm: positive
    print(f"same math, float64, B {batch}, T {steps}, H {hidden}, with a positive h0: max |theirs - rnnkit|")
    worst = 0.0
    for backend in ("auto", "scan", "log-scan", "reference"):
        ours = rnnkit_mingru(hidden, backend, dtype=torch.float64)
        copy_their_weights(theirs, ours)
        diff = _differences(theirs, ours, x, h0)
        worst = max(worst, *diff.values())
        print(f"  form='log' {backend:>9}: " + ", ".join(f"{k} {v:.1e}" for k, v in diff.items()))
    plain = rnnkit_mingru(hidden, "scan", form="plain", dtype=torch.float64)
    copy_their_weights(theirs, plain)
    print(f"  form='plain' (no g on the candidate, another function): output "
          f"{_differences(theirs, plain, x, h0)['output']:.1e}")
    if worst >= TOLERANCE:
        raise AssertionError(f"rnnkit form='log' and {PACKAGE} differ by {worst:.1e} (tolerance {TOLERANCE:.0e})")
    print(f"  agree: every difference of form='log' < {TOLERANCE:.0e}\n")


def contenders(hidden: int) -> dict:
    return {PACKAGE: their_class()(hidden),
            "rnnkit auto": rnnkit_mingru(hidden, "auto"),
            "rnnkit log-scan": rnnkit_mingru(hidden, "log-scan")}


def speed_table(modules: dict, grid: list[tuple[int, int]], hidden: int, repeats: int, threads: int) -> None:
    names = list(modules)
    torch.set_num_threads(threads)
    print(f"tokens/s, one layer, hidden {hidden}, {threads} thread(s), torch {torch.__version__}, "
          f"{PACKAGE} {importlib.metadata.version(PACKAGE)}; ratios: rnnkit / {PACKAGE}")
    print(f"{'B':>3} {'T':>5} {'form':5} " + " ".join(f"{n:>15}" for n in names) + "   auto/them  log-scan/them")
    for training in (True, False):
        for batch, steps in grid:
            got = speeds(modules, batch, steps, hidden, training, repeats, batch_first=True)
            base = got[PACKAGE]
            print(f"{batch:>3} {steps:>5} {'train' if training else 'infer':5} "
                  + " ".join(f"{got[n]:>15,.0f}" for n in names)
                  + f"   {got['rnnkit auto'] / base:>8.2f}x  {got['rnnkit log-scan'] / base:>12.2f}x", flush=True)
    print()


def memory_table(modules: dict, lengths: list[int], hidden: int, batch: int) -> None:
    names = list(modules)
    print(f"saved for backward (MiB, batch {batch}): one training forward")
    print(f"{'T':>5} " + " ".join(f"{n:>15}" for n in names))
    for steps in lengths:
        row = [saved_bytes(modules[n], batch, steps, hidden, batch_first=True) / 2**20 for n in names]
        print(f"{steps:>5} " + " ".join(f"{v:>15.1f}" for v in row), flush=True)


def main() -> None:
    parser = grid_parser(__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--memory-batch", type=int, default=16, help="0: no memory table")
    parser.add_argument("--memory-steps", type=int, nargs="*", default=[128, 512, 2048])
    parser.add_argument("--check-only", action="store_true", help="run the same-math check alone")
    args = parser.parse_args()
    same_math()
    if args.check_only:
        return
    torch.manual_seed(0)
    modules = contenders(args.hidden)
    for threads in args.threads:
        speed_table(modules, grid(args), args.hidden, args.repeats, threads)
    if args.memory_steps and args.memory_batch:
        memory_table(modules, args.memory_steps, args.hidden, args.memory_batch)


if __name__ == "__main__":
    main()
