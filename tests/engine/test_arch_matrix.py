"""The x86 build matrix: the engine's and the export's equivalence tests on the fused kernels built for each
instruction set this CPU can run, whatever its best one is (``RNNKIT_FUSED_ARCH``: ``avx2`` as on an AMD Zen 3,
``portable`` as on a machine without AVX; ``native`` is what the rest of the suite runs).

Each choice runs in a fresh process (the kernels are loaded once per process), on a subset chosen to reach every
kernel path (cells, the minimal cells' scan, layers, directions, lengths, initial states, threads split by rows,
float32 and float64) in well under a minute for both; tests/engine/test_fused_arch.py checks the built objects
themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.engine import machine
from rnnkit.engine.fused import build

ROOT = Path(__file__).resolve().parents[2]
SUBSET = [
    # engine: fused against reference (float64: outputs, states, gradients) and torch.nn (float32)
    "tests/engine/test_fused_equivalence.py::test_no_bias_and_dropout_between_layers",
    "tests/engine/test_fused_equivalence.py::test_batch_of_one_and_single_step",
    "tests/engine/test_fused_equivalence.py::test_float32_matches_torch_nn",
    "tests/engine/test_fused_equivalence.py::test_rows_split_across_threads",
    "tests/engine/test_fused_equivalence.py::test_gradcheck",
    "tests/engine/test_fused_equivalence.py::test_plain_cells_match_reference",
    "-k", "not test_plain_cells_match_reference or (mixed and 2)",
    # the minimal cells' gated scan: float64 with and without lengths, rows split across threads, float32
    "tests/engine/test_fused_min.py::test_rows_split_across_threads_equal_one_block",
    "tests/engine/test_fused_min.py::test_float32_matches_the_scan",
    "tests/engine/test_fused_min.py::test_gradcheck",
    # export: ONNX against the models running on the fused kernels (RNNKIT_TEST_BACKEND, tests/export/conftest.py)
    "tests/export/test_export_models.py::test_classifier_export_matches_torch",
    "tests/export/test_export_models.py::test_language_model_export_matches_torch",
]
# Loads the kernels first, to show which build ran (a failed build would otherwise fall back silently).
RUNNER = """
import sys, pytest
from rnnkit.engine import machine
from rnnkit.engine.fused import build
if build.load() is None:
    sys.exit("no fused kernels: " + str(build.failure()))
print("ARCH", build.arch(), build.provenance(), flush=True)
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
"""


@pytest.mark.parametrize("arch", ["avx2", "portable"])
def test_equivalence_on_each_x86_build(arch):
    if not build.X86:
        pytest.skip("x86-64 builds; on this CPU the default build is the portable path, which the suite runs")
    if arch == "avx2" and not {"avx2", "fma"} <= set(machine.current().flags):
        pytest.skip("this x86 CPU has no AVX2/FMA to run the avx2 build")
    env = {**os.environ, "RNNKIT_FUSED_ARCH": arch, "RNNKIT_TEST_BACKEND": "fused", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", RUNNER, *SUBSET], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    report = done.stdout[-3000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    loaded = next(line for line in done.stdout.splitlines() if line.startswith("ARCH"))
    assert loaded.split()[1] == arch, loaded  # the library's cache name covers its flags: this build's
    assert " passed" in report and " failed" not in report and " skipped" not in report, report
