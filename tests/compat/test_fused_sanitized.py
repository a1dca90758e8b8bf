"""The fused kernels under AddressSanitizer and UndefinedBehaviorSanitizer (``RNNKIT_FUSED_SANITIZE=1``).

A fresh process, with ASan's runtime loaded first (``LD_PRELOAD``), builds the sanitized kernels (a cache entry
of their own) and runs a handful of the fused equivalence tests and the boundary tests; any out-of-bounds
access, use after free or undefined behaviour in the kernels aborts it with a report. Kept short (a few cases
on tiny layers) so every CI run can afford it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SELECTED = ["tests/engine/test_fused_equivalence.py", "-k",
            "float32_matches_torch_nn or batch_of_one or rows_split_across_threads or "
            "(match_reference and 2-True-mixed-True) or halves_of_one_projection",
            "tests/engine/test_fused_extras.py::test_extras_with_initial_state_and_no_bias",
            "tests/engine/test_fused_extras.py::test_extras_rows_split_across_threads",
            "tests/compat/test_fused_boundary.py",
            # the minimal cells' gated scan: lengths, rows split across threads, u and c read in place
            "tests/engine/test_fused_min.py::test_rows_split_across_threads_equal_one_block",
            "tests/engine/test_fused_min.py::test_the_halves_of_one_projection_are_read_in_place"]
CHECK = """
import sys, pytest
from rnnkit.engine.fused import build
assert build.sanitize() and "-fsanitize=address,undefined" in build.flags(), build.flags()
assert build.failure() is None, build.failure()
print("sanitized kernels:", build.provenance())
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-x", *sys.argv[1:]]))
"""


def _libasan() -> str | None:
    compiler = shutil.which("gcc") or shutil.which("g++")
    if compiler is None:
        return None
    path = subprocess.run([compiler, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def test_fused_kernels_pass_under_asan_and_ubsan():
    libasan = _libasan()
    if libasan is None:
        pytest.skip("no libasan.so next to gcc (gcc -print-file-name=libasan.so): cannot run the sanitized kernels")
    env = {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0", "RNNKIT_FUSED_SANITIZE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", CHECK, *SELECTED], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    report = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, report
    assert "sanitized kernels:" in done.stdout and "passed" in done.stdout, report
    for marker in ("AddressSanitizer", "runtime error:", "UndefinedBehaviorSanitizer"):
        assert marker not in done.stderr, report
