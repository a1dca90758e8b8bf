"""Compile and load the fused kernels (``kernels.cpp``) once per machine, loudly.

The kernels are plain C++ with a C ABI, built with the system's ``g++`` on first use (about 3 s) and
cached under ``$RNNKIT_CACHE`` (default ``~/.cache/rnnkit``), keyed by the source, the flags, torch's
version and the CPU, so a changed file or a different machine rebuilds. Nothing compiles at install time.

They link against torch's own ``libtorch_cpu`` for the BLAS (``sgemm_``/``dgemm_``, MKL) and glibc's
``libmvec`` for vectorised exp/tanh. If the compiler is missing or fails, ``load()`` returns ``None``,
``failure()`` says why, a warning is issued once, and the fused back end declines every call (``auto``
then falls back to the native or reference back end). ``RNNKIT_FUSED=0`` disables it on purpose.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernels.cpp")
SOURCES = (SOURCE, *(SOURCE.with_name(h) for h in ("kernels_extras.h", "kernels_forward.h", "kernels_threads.h")))
# ^ everything the build reads: the cache key
# -ffast-math lets gcc call glibc's vectorised exp/tanh (libmvec); the kernels never rely on NaN/inf checks.
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp-simd", "-fPIC", "-shared", "-fvisibility=hidden",
         "-std=c++17"]

_state: dict = {}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _cache_path(compiler: str) -> Path:
    key = hashlib.sha256()
    parts = [path.read_bytes() for path in SOURCES]
    parts += [" ".join(FLAGS).encode(), compiler.encode(), torch.__version__.encode(), platform.machine().encode(),
              _cpu_model().encode()]
    for part in parts:
        key.update(part)
    root = Path(os.environ.get("RNNKIT_CACHE", Path.home() / ".cache" / "rnnkit"))
    return root / f"fused-{key.hexdigest()[:16]}.so"


def _compile(compiler: str, target: Path) -> None:
    torch_lib = Path(torch.__file__).parent / "lib"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: concurrent processes never load a half-written library.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    cmd = [compiler, *FLAGS, "-o", tmp, str(SOURCE), f"-L{torch_lib}", "-ltorch_cpu", f"-Wl,-rpath,{torch_lib}",
           "-lmvec", "-lm"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Extras(ctypes.Structure):
    """Mirror of ``struct Extras`` in kernels.cpp: the cell extras' tensors (null where off)."""

    _fields_ = [(name, ctypes.c_void_p) for name in
                ("rmask", "zh", "zc", "ln_w", "ln_b", "lnc_w", "lnc_b", "ct", "xh", "rs", "xhc", "rsc", "hin")]


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i = ctypes.c_void_p, ctypes.c_int
    extras = ctypes.POINTER(Extras)
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"rk_forward_ext_{suffix}")
        fwd.argtypes = [i, i, i, i, p, p, p, p, p, p, p, p, p, p, p, p, i, extras, i, p]
        fwd.restype = None
        bwd = getattr(lib, f"rk_backward_ext_{suffix}")
        bwd.argtypes = [i, i, i, i, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, p, i, extras, i, p]
        bwd.restype = None
        fwd = getattr(lib, f"rk_forward_{suffix}")
        fwd.argtypes = [i, i, i, i, p, p, p, p, p, p, p, p, p, p, i, p, p, p, i, i, p]
        fwd.restype = None
        bwd = getattr(lib, f"rk_backward_{suffix}")
        bwd.argtypes = [i, i, i, i, p, p, p, p, p, p, p, p, p, p, p, p, p, i, i, p]
        bwd.restype = None
    return lib


def load() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first call; ``None`` (with a warning) if that is impossible."""
    if "lib" in _state:
        return _state["lib"]
    lib, reason = None, None
    if os.environ.get("RNNKIT_FUSED", "1") == "0":
        reason = "disabled by RNNKIT_FUSED=0"
    elif platform.system() != "Linux":
        reason = f"the fused kernels are built for Linux only, this is {platform.system()}"
    else:
        compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
        if compiler is None:
            reason = "no C++ compiler (g++) on PATH"
        else:
            try:
                target = _cache_path(compiler)
                if not target.exists():
                    _compile(compiler, target)
                lib = _bind(ctypes.CDLL(str(target)))
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as err:
                reason = f"building the fused kernels failed: {err}"
    if reason is not None and reason != "disabled by RNNKIT_FUSED=0":
        warnings.warn(f"rnnkit: fused back end unavailable ({reason}); using the other back ends", stacklevel=2)
    _state["lib"], _state["reason"] = lib, reason
    return lib


def failure() -> str | None:
    """Why the kernels could not be loaded, or ``None`` if they are loaded (builds them if needed)."""
    load()
    return _state["reason"]
