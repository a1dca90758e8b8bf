"""CLI verbs for serving and looking inside: serve, inspect."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rnnkit.cli.options import add_dataclass_arguments, dataclass_from_args
from rnnkit.outputs import write_text_atomically
from rnnkit.serve.config import LOOPBACK, ServeConfig
from rnnkit.validation import check_finite_number


def register(verbs) -> None:
    sv = verbs.add_parser("serve", help="serve models over HTTP with an explorer page (FastAPI + uvicorn)",
                          description="Serve classifiers and language models: POST /v1/classify, /v1/generate "
                                      "(Server-Sent Events), /v1/inspect; GET /v1/models, /healthz, /readyz; the "
                                      "explorer page at /, API docs at /docs. Ctrl-C lets running requests finish.")
    sv.add_argument("models", nargs="+", metavar="RUN_OR_MODEL",
                    help="saved model folders (or run folders holding model/); NAME=PATH names one")
    sv.add_argument("--host", default=LOOPBACK, help=f"address to listen on (default: {LOOPBACK}, this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    sv.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_dataclass_arguments(sv, ServeConfig, title="limits and batching")
    sv.set_defaults(run=run_serve)

    ins = verbs.add_parser("inspect", help="what a model reads, token by token, as a PNG and an HTML page",
                           description="Per token: the prediction so far, every layer's hidden states (heatmap), "
                                       "the text coloured by one unit, gate saturation and, with --span, the units "
                                       "on over a span and off elsewhere. Writes OUT.png and OUT.html (the "
                                       "explorer page with the data inlined: opens without a server).")
    ins.add_argument("model", help="a saved model folder (or a run folder holding model/)")
    ins.add_argument("text", help="the text to read ('-' reads it from stdin)")
    ins.add_argument("--out", default="inspect", help="output path without extension (default: ./inspect)")
    ins.add_argument("--unit", type=int, default=None,
                     help="unit of layer 0 (forward) to colour the text by (default: the most variable one)")
    ins.add_argument("--span", default=None, metavar="START:END",
                     help="token span [START, END) for the units-on-there-off-elsewhere search")
    ins.add_argument("--threshold", type=float, default=0.3, help="a unit is on above this value (default: 0.3)")
    ins.add_argument("--max-tokens", type=int, default=400, help="read at most this many tokens (default: 400)")
    ins.add_argument("--json", action="store_true", help="also write OUT.json with the raw data")
    ins.set_defaults(run=run_inspect)


def run_serve(args: argparse.Namespace) -> int:
    from rnnkit.serve.models import ModelRegistry
    from rnnkit.serve.server import check_address, serve

    config = dataclass_from_args(ServeConfig, args)
    check_address(args.host, args.port)  # before the models load, which can take a while
    registry = ModelRegistry.from_specs(args.models)
    for m in registry:
        print(f"loaded {m.name}: {m.kind.replace('_', ' ')} from {m.path}", file=sys.stderr)

    def ready(port: int) -> None:
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"rnnkit serve: http://{host}:{port}/ (explorer), /docs (API); Ctrl-C to stop", file=sys.stderr,
              flush=True)

    return serve(registry, host=args.host, port=args.port, config=config, log_level=args.log_level, on_ready=ready)


def _parse_span(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        start, end = (int(part) for part in text.split(":"))
    except ValueError as err:
        raise ValueError(f"--span must be START:END (token positions), got {text!r}") from err
    return start, end


def run_inspect(args: argparse.Namespace) -> int:
    from rnnkit.saved.kinds import CLASSIFIER
    from rnnkit.serve.inspection import inspect_classifier, inspect_language_model
    from rnnkit.serve.models import load_model
    from rnnkit.serve.render import write_html, write_png

    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise ValueError("the text is empty: nothing to inspect")
    if args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be a positive integer, got {args.max_tokens}")
    check_finite_number("--threshold", args.threshold)
    span = _parse_span(args.span)
    served = load_model(args.model)
    run = inspect_classifier if served.kind == CLASSIFIER else inspect_language_model
    result = run(served.model, text, args.max_tokens)
    result["model"] = served.name
    if span is not None and not 0 <= span[0] < span[1] <= len(result["tokens"]):
        raise ValueError(f"--span {args.span} must lie within the {len(result['tokens'])} tokens read")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    png = write_png(result, out.with_suffix(".png"), unit=args.unit, span=span, threshold=args.threshold)
    html = write_html(result, served.describe(), text, out.with_suffix(".html"), span, args.unit)
    written = [png, html]
    if args.json:
        written.append(out.with_suffix(".json"))
        write_text_atomically(written[-1], json.dumps(result))
    if served.kind == CLASSIFIER:
        summary = "  ".join(f"{label} {p:.3f}" for label, p in result["final"].items())
    else:
        top = result["predictions"][-1]["top"][:5]
        summary = "next token: " + "  ".join(f"{c['token']!r} {c['p']:.3f}" for c in top)
    print(f"{len(result['tokens'])} tokens{' (truncated)' if result['truncated'] else ''}; {summary}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
