"""What the engines run on: CPU model, the instruction-set flags that matter to them, cache sizes, threads.

Read from Linux's ``/proc/cpuinfo`` and ``/sys/devices/system/cpu``; elsewhere the fields say ``unknown``.
Used by the auto-tuner's machine key, ``rnnkit engine-report`` and ``benchmarks/engine.py``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

# The flags the kernels (or MKL/oneDNN under torch) can use; the rest of /proc/cpuinfo's list is noise here.
RELEVANT_FLAGS = ("sse4_2", "avx", "fma", "f16c", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                  "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "sve2")


@dataclass(frozen=True)
class Machine:
    cpu: str
    model: str  # family/model/stepping numbers: a VM's model name is often generic ("Intel Xeon Processor")
    arch: str
    flags: tuple[str, ...]
    caches: tuple[str, ...]  # e.g. "L2 2 MiB (per 1 CPU)"
    cpus: int
    threads: int
    torch: str

    def key(self) -> str:
        """What the tuned decisions depend on: the CPU model, torch's version and the thread count."""
        return f"{self.cpu} | {self.model} | {self.arch} | torch {self.torch} | {self.threads} threads"

    def lines(self) -> list[str]:
        return [f"CPU      {self.cpu} ({self.arch}, {self.model}), {self.cpus} CPUs usable, torch {self.torch}, "
                f"{self.threads} torch threads",
                f"flags    {' '.join(self.flags) or 'unknown'}",
                f"caches   {'; '.join(self.caches) or 'unknown'}"]


def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


def _size(text: str) -> str:
    text = text.strip()
    if text.endswith("K") and text[:-1].isdigit():
        kib = int(text[:-1])
        return f"{kib // 1024} MiB" if kib % 1024 == 0 else f"{kib} KiB"
    return text


def _caches() -> tuple[str, ...]:
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size, shared = ((index / n).read_text().strip() for n in
                                         ("level", "type", "size", "shared_cpu_list"))
        except OSError:
            continue
        if kind == "Instruction":
            continue
        sharing = sum(int(b) - int(a) + 1 if "-" in part else 1
                      for part in shared.split(",") for a, _, b in [part.partition("-")] if part)
        caches.append(f"L{level}{'d' if kind == 'Data' else ''} {_size(size)} (per {sharing} CPU"
                      f"{'s' if sharing > 1 else ''})")
    return tuple(caches)


def current() -> Machine:
    info = _cpuinfo()
    cpu = info.get("model name") or info.get("Model") or platform.processor() or "unknown"
    present = set((info.get("flags") or info.get("Features") or "").split())
    flags = tuple(f for f in RELEVANT_FLAGS if f in present)
    model = ", ".join(f"{k} {info[k]}" for k in ("cpu family", "model", "stepping", "CPU part") if k in info)
    return Machine(cpu=cpu, model=model or "unknown", arch=platform.machine(), flags=flags, caches=_caches(),
                   cpus=usable_cpus(), threads=torch.get_num_threads(), torch=torch.__version__)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; the machine's count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_and_cpus() -> tuple[int, int]:
    """(torch's threads, the CPUs this process may run on): what the engines may spread a call over, now."""
    return torch.get_num_threads(), usable_cpus()
