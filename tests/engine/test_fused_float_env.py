"""Loading the fused library must leave the process's floating-point environment alone.

gcc (< 13) links crtfastmath.o into a shared library built with -ffast-math on the link line; its constructor
sets flush-to-zero and denormals-are-zero for the whole process, so after the first fused call every subnormal
in the user's program (Python floats, numpy, torch) silently became 0. Checked in a fresh process, since the
state is process-wide and sticky.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, torch, rnnkit
tiny = sys.float_info.min / 2          # a subnormal: 0.0 under flush-to-zero
assert tiny > 0, "subnormals flushed before rnnkit ran"
gru = rnnkit.GRU(4, 8, backend="fused")
out, _ = gru(torch.randn(5, 2, 4))
assert out.shape == (5, 2, 8)
half = sys.float_info.min / 2
print("python", half > 0, "torch", bool(torch.tensor(1e-39, dtype=torch.float32) * 0.5 > 0))
"""


def test_fused_library_leaves_subnormals_alone():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["python", "True", "torch", "True"], done.stdout
