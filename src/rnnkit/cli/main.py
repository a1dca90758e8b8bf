"""The ``rnnkit`` command: one verb per job, options generated from the typed configs.

    rnnkit train [--data bbc-news] [model, data and training options]
    rnnkit eval MODEL DATA
    rnnkit predict MODEL [TEXT ... | -] [--top-k K] [--json]
    rnnkit datasets
    rnnkit train-lm [--data shakespeare] [...]
    rnnkit generate MODEL --prompt TEXT -n 500
    rnnkit export MODEL --format onnx [--int8] [--out FILE]
    rnnkit serve RUN_OR_MODEL [...] [--host 127.0.0.1] [--port 8000]
    rnnkit inspect MODEL "text" [--out inspect] [--span START:END]
    rnnkit engine-report
"""

from __future__ import annotations

import argparse
import os
import sys

from rnnkit.cli import classify_verbs, engine_verbs, export_verbs, lm_verbs, serve_verbs

# What a broken pipe (``rnnkit predict ... | head -1``) ends with: 128 + SIGPIPE, as for a Unix tool killed by it.
EXIT_BROKEN_PIPE = 141
DEBUG_ENV = "RNNKIT_DEBUG"  # set to 1 to see the traceback behind a one-line error


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line like every other rnnkit error: the usage of `train` alone runs to dozens of lines.
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnkit", description="Recurrent neural networks for text: train, evaluate, predict and generate.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    classify_verbs.register(verbs, preset)
    lm_verbs.register(verbs)
    export_verbs.register(verbs)
    serve_verbs.register(verbs)
    engine_verbs.register(verbs)
    for verb_parser in verbs.choices.values():
        verb_parser.set_defaults(verb_parser=verb_parser)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    if extra and isinstance(getattr(args, "texts", None), list) and not any(e.startswith("-") for e in extra):
        # `predict MODEL --top-k 2 "some text"`: argparse stops filling TEXT at the first option; take the rest.
        args.texts, extra = args.texts + extra, []
    if extra:  # reported by the verb's parser, so the message says `rnnkit train: error: ...`
        args.verb_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(build_parser(), argv)
    if getattr(args, "model_preset", None):
        # A preset changes the defaults; parse again so options given explicitly still win.
        args = _parse(build_parser(args.model_preset), argv)
    # Imported once a verb runs: parsing, --help and argument errors load no torch.
    from rnnkit.training.distributed import RankZeroFailed, shutdown_world

    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly, like standard Unix tools.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, MemoryError) as err:
        # Bad input and OS errors are reported in one line naming what was wrong; no traceback from deep inside.
        if os.environ.get(DEBUG_ENV):
            raise
        if not isinstance(err, RankZeroFailed):  # under torchrun, rank 0 says it once; the others stay quiet
            print(f"rnnkit {args.verb}: error: {describe(err)}", file=sys.stderr)
        return 2
    finally:
        shutdown_world()  # leave torchrun's process group, if this run joined one


def describe(err: BaseException) -> str:
    """One line for an exception: an OS error as 'path: reason', anything else its message."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        text = f"{err.filename}: {err.strerror}"
        if err.filename2 is not None:
            text += f" (and {err.filename2})"
    elif isinstance(err, OSError) and err.strerror:
        text = err.strerror
    elif isinstance(err, KeyError) and len(err.args) == 1:
        text = f"missing key {err.args[0]!r}"
    elif isinstance(err, MemoryError):
        text = "out of memory" + (f": {err}" if str(err) else "")
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; pointing it at /dev/null keeps that from raising a second time.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a real file (e.g. captured in tests): nothing will be flushed to a pipe


if __name__ == "__main__":
    sys.exit(main())
