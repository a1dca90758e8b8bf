"""CLI verb: export a saved model for other runtimes (ONNX), and the ``--runtime`` option other verbs share."""

from __future__ import annotations

import argparse
import json

from rnnkit.saved.kinds import kind_text

RUNTIMES = ("torch", "onnx")


def add_inference_runtime_argument(parser: argparse.ArgumentParser) -> None:
    """``--runtime``: what runs a saved model for eval, predict and generate (torch or ONNX Runtime)."""
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch",
                        help="torch: the saved checkpoint; onnx: the exported graph (an .onnx file, or the run/model "
                             "folder it was exported from with the default --out) on ONNX Runtime (default: torch)")


def require_onnx() -> None:
    """A one-line error, not a traceback, when the optional ONNX packages are not installed."""
    import importlib.util

    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise RuntimeError(f"ONNX support needs {' and '.join(missing)}: pip install 'rnnkit[onnx]'")


def load_for_runtime(path: str, runtime: str, kind: str | None = None):
    """A Classifier or LanguageModel for ``runtime``; ``kind`` (a ``rnnkit.saved.kinds`` constant) if required."""
    if runtime == "onnx":
        require_onnx()
        from rnnkit.export import load_onnx

        predictor = load_onnx(path)
    else:
        from rnnkit.saved.loader import load_saved_model

        _, predictor = load_saved_model(path)
    if kind is not None and predictor.kind != kind:
        raise ValueError(f"{path} holds a {kind_text(predictor.kind)}, not a {kind_text(kind)}")
    return predictor


def register(verbs) -> None:
    ex = verbs.add_parser("export", help="export a saved classifier or language model to ONNX",
                          description="Write the whole model (embedding, recurrent stack, pooling and head; a "
                                      "language model as a step with its state in and out) as ONNX, with the "
                                      "vocabulary, tokenizer and labels in a JSON file beside it. The graph is "
                                      "checked against the PyTorch model on random batches of mixed lengths; "
                                      "the export fails, writing nothing, when they differ by more than the "
                                      "tolerance.")
    ex.add_argument("model", help="a saved model folder (or a run folder holding model/)")
    ex.add_argument("--format", choices=("onnx",), default="onnx", help="export format (default: onnx)")
    ex.add_argument("--int8", action="store_true",
                    help="write the ONNX Runtime dynamically quantized (int8 weights) graph instead of float32")
    ex.add_argument("--out", default=None,
                    help="the .onnx file to write (default: beside the checkpoint folder, named after it: "
                         "RUN/model.onnx, or RUN/model.int8.onnx with --int8)")
    ex.add_argument("--tolerance", type=float, default=1e-5,
                    help="largest max-abs difference from the PyTorch model accepted (float32; default: 1e-5)")
    ex.add_argument("--json", action="store_true", help="print the result as JSON")
    ex.set_defaults(run=run_export)


def _without_lengths(entry):
    """A parity entry without its list of checked lengths (long, and no use in a summary); the result keeps it."""
    return {k: v for k, v in entry.items() if k != "lengths"} if isinstance(entry, dict) else entry


def run_export(args: argparse.Namespace) -> int:
    require_onnx()
    from rnnkit.export import export_onnx

    result = export_onnx(args.model, args.out, int8=args.int8, tolerance=args.tolerance)
    summary = {"onnx": str(result.path), "sidecar": str(result.sidecar), "kind": result.kind, "int8": result.int8,
               "size_bytes": result.size_bytes, "parity": {k: _without_lengths(v) for k, v in result.parity.items()}}
    if args.json:
        print(json.dumps(summary))
        return 0
    f32 = result.parity["float32"]
    print(f"wrote {result.path} ({result.size_bytes / 1e6:.2f} MB) and {result.sidecar}")
    print(f"parity float32: max |onnx - torch| = {f32['max_abs_diff']:.3g} (tolerance {args.tolerance:g}), "
          f"top-1 agreement {f32['top1_agreement']:.4f}")
    if "int8" in result.parity:
        q = result.parity["int8"]
        print(f"int8: max |onnx - torch| = {q['max_abs_diff']:.3g}, top-1 agreement {q['top1_agreement']:.4f} "
              f"(random inputs; measure accuracy with `rnnkit eval {result.path} DATA --runtime onnx`)")
    return 0
