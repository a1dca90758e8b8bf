"""The fused kernels built for other instruction sets than this CPU's best: ``portable`` (baseline x86-64, no
AVX, no intrinsics, no MKL extensions: the path of an ARM machine) and ``avx2`` (x86-64-v3, no AVX-512), each checked
in the built object itself and against the reference back end (float64 and float32, the hand matrix-vector
loop at 1-3 rows, the BLAS from 4, threads split by rows and by units, the extras)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import torch

from rnnkit.engine.fused import build

from .conftest import KINDS, assert_same, make_layer, run_all

# Registers an object file may use under each choice: none of AVX's under portable, no 512-bit ones under avx2.
FORBIDDEN = {"portable": r"%[yz]mm\d|\{k\d\}", "avx2": r"%zmm\d|\{k\d\}"}
MACROS = {"portable": ("__AVX__", "__AVX2__", "__FMA__", "__AVX512F__"), "avx2": ("__AVX512F__",)}


@pytest.fixture(scope="module", params=["portable", "avx2"])
def built(request, tmp_path_factory):
    """The kernels built once (in a cache of the module's own) for one instruction-set choice."""
    if not build.X86:
        pytest.skip("the x86-64 variants; on this CPU the default build is the portable path")
    where = tmp_path_factory.mktemp(request.param)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RNNKIT_FUSED_ARCH", request.param)
        mp.setenv("RNNKIT_CACHE", str(where))
        mp.setattr(build, "_state", {})
        assert build.load() is not None, build.failure()
        assert f"({request.param})" in build.provenance()
        return request.param, dict(build._state), where / build._cache_name(build.find_compiler()), build.flags()


@pytest.fixture
def arch(built, monkeypatch):
    """This test runs on the kernels ``built`` (the session's own are back afterwards)."""
    monkeypatch.setattr(build, "_state", built[1])
    return built[0]


def test_flags_define_no_wider_vectors(built):
    arch, _, _, flags = built
    command = [build.find_compiler(), *flags, "-dM", "-E", "-x", "c++", "/dev/null"]
    defined = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert [m for m in MACROS[arch] if f"#define {m} " in defined] == []


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)")
def test_object_has_no_wider_instructions(built):
    arch, _, library, _ = built
    code = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True,
                          text=True, check=True).stdout
    assert "rk_forward_f32" in code  # really the disassembly of the kernels
    wide = [line for line in code.splitlines() if re.search(FORBIDDEN[arch], line)]
    assert wide == [], wide[:5]


@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_reference(arch, kind, two_threads):
    layer = make_layer(kind, layers=2, bidirectional=True)
    torch.manual_seed(2)
    for batch, lengths in ((1, None), (3, [6, 2, 4]), (9, [6, 1, 3, 5, 2, 6, 4, 6, 1])):
        x = torch.randn(6, batch, 4, dtype=torch.float64)
        assert_same(run_all(layer, "fused", x, None, lengths), run_all(layer, "reference", x, None, lengths))
    single = make_layer(kind, hidden=70).float()  # 70 units: a 256-byte block plus a ragged one
    x = torch.randn(5, 2, 4)
    with torch.no_grad():
        single.backend = "fused"
        out, _ = single(x)
        single.backend = "reference"
        expected, _ = single(x)
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("options", [{"layer_norm": True}, {"zoneout": 0.3}, {"recurrent_dropout": 0.2}])
def test_extras_match_reference(arch, options):
    layer = make_layer("lstm", layers=2, **options)
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    assert_same(run_all(layer, "fused", x, None, [5, 2, 4]), run_all(layer, "reference", x, None, [5, 2, 4]))


@pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)")
def test_portable_object_needs_only_the_plain_blas(built):
    """Weak MKL extensions in the default build; in the portable one, not even referenced: their fallbacks ran."""
    arch, _, library, _ = built
    symbols = subprocess.run(["objdump", "-T", str(library)], capture_output=True, text=True, check=True).stdout
    assert "sgemm_" in symbols and "dgemm_" in symbols
    extensions = [s for s in ("MKL_Somatcopy", "MKL_Set_Num_Threads_Local", "cblas_sgemm_pack") if s in symbols]
    if arch == "portable":
        assert extensions == []
    else:
        assert extensions and all(re.search(rf"\bw\b.*\b{s}\b", symbols) for s in extensions)
