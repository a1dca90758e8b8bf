"""CLI verb ``engine-report``: the machine, the fused kernels' build, and the auto-tuner's decisions."""

from __future__ import annotations

import argparse
import json


def register(verbs) -> None:
    rep = verbs.add_parser("engine-report", help="print the CPU, the compiled kernels and backend='auto' decisions",
                           description="Print what the engines run on (CPU model, flags, caches, threads), where the "
                                       "fused kernels come from, and the back end backend='auto' chose for each "
                                       "kind of call timed on this machine (per torch version and thread count).")
    rep.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    rep.set_defaults(run=run_engine_report)


def _decision_files() -> list[dict]:
    from rnnkit.engine import autotune, cache

    # Only files that pass the cache's owner and mode checks and autotune's own reading of them.
    docs = (autotune.read_doc(path.name) for path in sorted(cache.directory().glob("autotune-*.json")))
    return [doc for doc in docs if doc is not None]


def run_engine_report(args: argparse.Namespace) -> int:
    from rnnkit.engine import autotune, cache, machine
    from rnnkit.engine.fused import build

    m = machine.current()
    fused = build.failure() or build.provenance()
    docs = _decision_files()
    if args.json:
        print(json.dumps({"machine": {**m.__dict__, "key": autotune.machine_key()}, "fused": fused,
                          "fused_arch": build.arch(), "cache": str(cache.directory()), "cache_refused": cache.refused(),
                          "autotune": autotune.enabled(), "decisions": docs}, indent=1))
        return 0
    print("\n".join(m.lines()))
    print(f"fused    {fused} [RNNKIT_FUSED_ARCH={build.arch()}]")
    refused = cache.refused()
    print(f"cache    {cache.directory()}" + (f" (the asked directory was refused: {refused})" if refused else ""))
    print(f"auto     {'timed on first use of each kind' if autotune.enabled() else 'static rules (RNNKIT_AUTOTUNE=0)'}")
    current = autotune.machine_key()
    if not docs:
        print("\nno decisions recorded yet (they are made on the first backend='auto' call of each kind)")
    for doc in sorted(docs, key=lambda d: d.get("machine") != current):
        here = " (this machine and thread count)" if doc.get("machine") == current else ""
        print(f"\ndecisions for {doc.get('machine')}{here}:")
        width = max((len(k) for k in doc["decisions"]), default=0)
        for key, entry in doc["decisions"].items():
            times = ", ".join(f"{name} {ms:.3g} ms" for name, ms in sorted((entry.get("ms") or {}).items()))
            static = entry.get("static")
            note = "" if static in (None, entry["backend"]) else f" (static rule: {static})"
            if entry.get("settled") is False:
                note += f" (provisional after {entry.get('checks', 1)} check(s): raced again when the machine is quiet)"
            print(f"  {key:<{width}} -> {entry['backend']}{note}  [{times}; {entry.get('timed_steps', '?')} steps]")
    return 0
