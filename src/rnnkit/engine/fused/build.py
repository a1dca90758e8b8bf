"""Compile and load the fused kernels (``kernels.cpp``) once per machine, loudly, and only ever our own build.

The kernels are plain C++ with a C ABI, built with the system's ``g++`` on first use (about 3 s) and
cached in the engine's private directory (``rnnkit.engine.cache``: ``$RNNKIT_CACHE`` or ``~/.cache/rnnkit``,
mode 0700), keyed by the source, the flags, torch's version and the CPU, so a changed file or a different
machine rebuilds. Nothing compiles at install time.

A cached library is loaded only if it is a regular file of this user's that nobody else can write and its
SHA-256 equals the one recorded beside it (``<name>.sha256``) when it was built; the check reads the very
file descriptor that ``dlopen`` then loads (``/proc/self/fd/N``), so nothing can be swapped in between.
Anything else (a foreign or edited file, a link, loose modes, no record) is rebuilt: compiled in a private
temporary directory, loaded from there, and copied into the cache atomically (temporary name, rename).
``provenance()`` says which happened and why.

``RNNKIT_FUSED_SANITIZE=1`` builds them with AddressSanitizer and UndefinedBehaviorSanitizer (a cache entry of
its own: the flags are part of the key); the process must then have ``libasan`` loaded first
(``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``, see ``tests/compat/test_fused_sanitized.py``).

When the library loads, its own account of the Python ↔ C++ contract (kinds, gates, saved activations, the
extras' fields, LayerNorm's eps) is checked against ``contract``; a library that disagrees is refused.

``RNNKIT_FUSED_ARCH`` chooses the instruction set: ``native`` (default, ``-march=native``), ``avx2``
(``-march=x86-64-v3``) or ``portable`` (baseline x86-64, or the compiler's default elsewhere: no AVX, no
intrinsics, and none of MKL's extensions to the BLAS, each replaced by its fallback: the path of an ARM
machine, whose torch has OpenBLAS; there the extensions, weak symbols, are null anyway).

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

from rnnkit.engine import cache
from rnnkit.engine.fused import contract

SOURCE = Path(__file__).with_name("kernels.cpp")
SOURCES = (SOURCE, *(SOURCE.with_name(h) for h in ("kernels_extras.h", "kernels_forward.h", "kernels_threads.h",
                                                      "kernels_scan.h")))
# ^ everything the build reads: the cache key
# -ffast-math lets gcc call glibc's vectorised exp/tanh (libmvec); the kernels never rely on NaN/inf checks.
BASE_FLAGS = ["-O3", "-ffast-math", "-fopenmp-simd", "-fPIC", "-shared", "-fvisibility=hidden", "-std=c++17"]
COMPILE_ONLY_FLAGS = ("-ffast-math",)  # never on the link line: see _compile
# Part of the cache key: a change to how the library is built (not only its flags) must rebuild it.
BUILD_RECIPE = "compile, then link without -ffast-math"
X86 = platform.machine() in ("x86_64", "AMD64", "i686", "i386")
ARCHS = {"native": ["-march=native"], "avx2": ["-march=x86-64-v3"],
         "portable": [*(["-march=x86-64", "-mtune=generic"] if X86 else []), "-DRK_BLAS_ONLY"]}

_state: dict = {}


def arch() -> str:
    """The instruction-set choice (``RNNKIT_FUSED_ARCH``), checked."""
    name = os.environ.get("RNNKIT_FUSED_ARCH", "native") or "native"
    if name not in ARCHS:
        raise ValueError(f"RNNKIT_FUSED_ARCH must be one of {sorted(ARCHS)}, got {name!r}")
    if name == "avx2" and not X86:
        raise ValueError(f"RNNKIT_FUSED_ARCH='avx2' needs an x86-64 CPU, this is {platform.machine()}")
    return name


# Frame pointers and debug lines so the sanitizers' reports name the kernel's source line.
# -O1 after -O3: a quicker build, and reports that point at the right line.
SANITIZE_FLAGS = ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer",
                  "-g"]


def sanitize() -> bool:
    """Whether to build with ASan and UBSan (``RNNKIT_FUSED_SANITIZE``, ``1`` or ``0``), checked."""
    value = os.environ.get("RNNKIT_FUSED_SANITIZE", "0") or "0"
    if value not in ("0", "1"):
        raise ValueError(f"RNNKIT_FUSED_SANITIZE must be '0' or '1', got {value!r}")
    return value == "1"


def flags() -> list[str]:
    return [*BASE_FLAGS[:1], *ARCHS[arch()], *BASE_FLAGS[1:], *(SANITIZE_FLAGS if sanitize() else [])]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_name(compiler: str) -> str:
    key = hashlib.sha256()
    parts = [path.read_bytes() for path in SOURCES]
    parts += [" ".join(flags()).encode(), BUILD_RECIPE.encode(),
              compiler.encode(), torch.__version__.encode(), platform.machine().encode(),
              cpu_model().encode()]
    for part in parts:
        key.update(part)
    return f"fused-{key.hexdigest()[:16]}.so"


def _compile(compiler: str, target: Path) -> None:
    torch_lib = Path(torch.__file__).parent / "lib"
    obj = target.with_suffix(".o")
    # Compiled and linked in two steps: -ffast-math on the link line makes gcc (< 13, even with -shared) link
    # crtfastmath.o, whose constructor turns on flush-to-zero and denormals-are-zero for the whole process when
    # the library loads, silently changing every float computation of the user's program (Python's included).
    link_flags = [flag for flag in flags() if flag not in COMPILE_ONLY_FLAGS]
    for cmd in ([compiler, *flags(), "-c", "-o", str(obj), str(SOURCE)],
                [compiler, *link_flags, "-o", str(target), str(obj), f"-L{torch_lib}", "-ltorch_cpu",
                 f"-Wl,-rpath,{torch_lib}", "-lmvec", "-lm"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr.strip()[-2000:]}")


def _dlopen(fd: int) -> ctypes.CDLL:
    # The descriptor whose bytes were just hashed: the loaded file is the checked one, whatever the name holds now.
    return _bind(ctypes.CDLL(f"/proc/self/fd/{fd}"))


NOT_BUILT = "none built yet"


def _load_cached(name: str) -> tuple[ctypes.CDLL | None, str | None]:
    """The cached library if its owner, mode and recorded hash check out, else ``(None, why not)``."""
    fd, problem = cache.open_checked(name)
    if fd is None:
        return None, NOT_BUILT if problem == "missing" else f"it is {problem}"
    try:
        record, problem = cache.read(name + ".sha256")
        if record is None:
            return None, "no hash was recorded for it" if problem == "missing" else f"its hash record is {problem}"
        digest = hashlib.sha256()
        with os.fdopen(os.dup(fd), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if record.decode(errors="replace").split()[:1] != [digest.hexdigest()]:
            return None, "its content differs from the hash recorded when it was built"
        return _dlopen(fd), None
    finally:
        os.close(fd)


def _build(compiler: str, name: str) -> ctypes.CDLL:
    """Compile in a private temporary directory, load that file, then copy it (and its hash) into the cache."""
    with tempfile.TemporaryDirectory(prefix="rnnkit-build-") as tmp:
        built = Path(tmp) / name
        _compile(compiler, built)
        data = built.read_bytes()
        fd = os.open(built, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            lib = _dlopen(fd)
        finally:
            os.close(fd)
    try:
        # The record first: a reader that sees the new library with the old record only rebuilds.
        cache.write(name + ".sha256", f"{hashlib.sha256(data).hexdigest()}  {name}\n".encode())
        cache.write(name, data, mode=0o700)
    except OSError as err:
        # A full disk or a read-only cache: the library is built and loaded, so this process still uses it.
        warnings.warn(f"rnnkit: the fused kernels could not be kept in {cache.directory()} ({err}); they are used "
                      "now and rebuilt by the next process", stacklevel=3)
    return lib


class Extras(ctypes.Structure):
    """Mirror of ``struct Extras`` in kernels.cpp: the cell extras' tensors (null where off); fields from the
    contract, which the library's own list is checked against at load."""

    _fields_ = [(name, ctypes.c_void_p) for name in contract.EXTRAS_FIELDS]


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    contract.check(lib)
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
        for step, args in (("forward", contract.SCAN_FORWARD), ("backward", contract.SCAN_BACKWARD)):
            scan = getattr(lib, f"rk_gated_scan_{step}_{suffix}")
            scan.argtypes = [i if name in contract.SCAN_INTEGERS else p for name in args]
            scan.restype = None
    return lib


def _asan_loaded() -> bool:
    try:
        return "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def find_compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def load() -> ctypes.CDLL | None:
    """The compiled kernels, building them on first call; ``None`` (with a warning) if that is impossible."""
    if "lib" in _state:
        return _state["lib"]
    lib, reason, provenance = None, None, None
    if os.environ.get("RNNKIT_FUSED", "1") == "0":
        reason = "disabled by RNNKIT_FUSED=0"
    elif platform.system() != "Linux":
        reason = f"the fused kernels are built for Linux only, this is {platform.system()}"
    else:
        compiler = find_compiler()
        if compiler is None:
            reason = "no C++ compiler (g++) on PATH"
        elif sanitize() and not _asan_loaded():
            # dlopen of an ASan library into a process without the runtime first kills the process.
            reason = ("RNNKIT_FUSED_SANITIZE=1 needs AddressSanitizer's runtime loaded first: run with "
                      "LD_PRELOAD=$(gcc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0")
        else:
            try:
                name = _cache_name(compiler)
                lib, refused = _load_cached(name)
                provenance = f"loaded {cache.directory() / name} (owner, mode and SHA-256 checked)"
                if lib is None:
                    lib = _build(compiler, name)
                    provenance = f"built {cache.directory() / name} ({arch()}): " + (
                        "first use" if refused == NOT_BUILT else f"the cached one was refused: {refused}")
            except contract.ContractError as err:
                reason = f"the fused kernels were refused: {err}"
            except (OSError, RuntimeError, ValueError, subprocess.SubprocessError, AttributeError) as err:
                reason = f"building the fused kernels failed: {err}"
    if reason is not None and reason != "disabled by RNNKIT_FUSED=0":
        warnings.warn(f"rnnkit: fused back end unavailable ({reason}); using the other back ends", stacklevel=2)
    _state["lib"], _state["reason"], _state["provenance"] = lib, reason, provenance
    return lib


def provenance() -> str | None:
    """Where the loaded kernels came from (cache or fresh build, and why a cached one was refused)."""
    load()
    return _state["provenance"]


def failure() -> str | None:
    """Why the kernels could not be loaded, or ``None`` if they are loaded (builds them if needed).

    Under ``torch.compile`` the fused code reads it through ``constants.failure``, once, at trace time.
    """
    load()
    return _state["reason"]
