"""The ``rnnkit`` command: one verb per job, options generated from the typed configs.

    rnnkit train [--data bbc-news] [model, data and training options]
    rnnkit eval MODEL DATA
    rnnkit predict MODEL [TEXT ... | -] [--top-k K] [--json]
    rnnkit datasets
    rnnkit train-lm [--data shakespeare] [...]
    rnnkit generate MODEL --prompt TEXT -n 500
"""

from __future__ import annotations

import argparse
import sys

from rnnkit.cli import classify_verbs, lm_verbs
from rnnkit.training.distributed import shutdown_world


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks for text: train, evaluate, predict and generate.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    classify_verbs.register(verbs, preset)
    lm_verbs.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "model_preset", None):
        # A preset changes the defaults; parse again so options given explicitly still win.
        args = build_parser(args.model_preset).parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, KeyError, RuntimeError) as err:
        # Bad input is reported in one line naming what was wrong; no traceback from deep inside.
        print(f"rnnkit {args.verb}: error: {err}", file=sys.stderr)
        return 2
    finally:
        shutdown_world()  # leave torchrun's process group, if this run joined one


if __name__ == "__main__":
    sys.exit(main())
