"""``--overwrite`` and ``--resume`` for the training verbs, and how a stopped run ends the command.

``--resume DIR`` continues the interrupted run of ``DIR`` with the settings it was
started with (saved in its staging folder), so ``rnnkit train --resume runs/x`` needs
nothing else. An option given explicitly on the command line is passed on, and the
run refuses it if it differs from the saved value (it would change the result).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from rnnkit.cli.options import dataclass_from_args
from rnnkit.models.config import from_saved


def add_run_flags(parser: argparse.ArgumentParser, sections: dict[str, type], scalars: tuple[str, ...] = ()) -> None:
    """Add the flags; call after every option of ``sections`` (config classes) and ``scalars`` is added."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run already in --out (it is kept until the new run completes)")
    parser.add_argument("--resume", metavar="DIR", default=None,
                        help="continue the interrupted run of DIR (its --out) from its last saved state, "
                             "with the settings it was started with")
    names = [f.name for cls in sections.values() for f in fields(cls)] + list(scalars) + ["out"]
    parser.set_defaults(option_defaults={name: parser.get_default(name) for name in names})


def run_settings(args: argparse.Namespace, sections: dict[str, type], scalars: tuple[str, ...] = ()):
    """``(out, configs by section, scalars by name)`` for a new run, or rebuilt from the saved run with --resume."""
    if args.resume is None:
        configs = {name: dataclass_from_args(cls, args) for name, cls in sections.items()}
        return args.out, configs, {name: getattr(args, name) for name in scalars}
    from rnnkit.training.rundir import RunFolderError, resumable_settings

    defaults = args.option_defaults
    if args.out != defaults["out"] and args.out != args.resume:
        raise RunFolderError(f"--resume {args.resume} continues that run in place; drop --out {args.out}")
    saved = resumable_settings(args.resume)
    explicit = {name for name in defaults if getattr(args, name, None) != defaults[name]}
    configs = {}
    for section, cls in sections.items():
        # A run saved before a field existed continues with the value it was trained with (from_saved).
        values = dict(saved.get(section, {}))
        values.update({f.name: getattr(args, f.name) for f in fields(cls) if f.name in explicit})
        configs[section] = from_saved(cls, values)
    values = {name: getattr(args, name) if name in explicit else saved.get(name, getattr(args, name))
              for name in scalars}
    return args.resume, configs, values


def report_stopped(verb: str, error: Exception) -> int:
    """Print why a run stopped (interrupted, diverged) in one line; return the exit code."""
    print(f"rnnkit {verb}: {error}", file=sys.stderr, flush=True)
    return error.exit_code
