"""``export_onnx``: a saved classifier or language model → model.onnx + model.json, parity-checked.

The JSON beside the graph holds what another language needs to use it: the vocabulary (token i has id i), the
tokenizer's settings, the labels (class i is logit i), max_length, the inputs and outputs, and the parity
figures measured at export. Files appear only once the check has passed: a failed export leaves any earlier
export in place.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from rnnkit.export.consistency import INTERFACE
from rnnkit.export.graphs import classifier_graph, language_model_graph
from rnnkit.export.parity import classifier_parity, language_model_parity
from rnnkit.export.recurrent import ExportError
from rnnkit.export.runtime import SIDECAR_FORMAT, make_session, sidecar_path
from rnnkit.outputs import reported_as
from rnnkit.saved.kinds import CLASSIFIER

TOLERANCE = 1e-5


@dataclass
class ExportResult:
    path: Path
    sidecar: Path
    kind: str
    parity: dict
    int8: bool
    size_bytes: int


def _load(source):
    """(kind, Classifier | LanguageModel) from a saved folder or an already loaded object."""
    from rnnkit.saved.classifier import Classifier
    from rnnkit.saved.language_model import LanguageModel
    from rnnkit.saved.loader import load_saved_model

    if isinstance(source, (Classifier, LanguageModel)):
        return source.kind, source
    return load_saved_model(source, error=ExportError)


def default_output(source, int8: bool) -> Path:
    from rnnkit.saved.folders import resolve_model_path

    if not isinstance(source, str | Path):
        raise ExportError("out is required when exporting an in-memory model")
    # Beside the checkpoint folder, not inside it: a checkpoint folder holds exactly its two files, and the
    # trainer refuses to replace one holding anything else (runs/x/model → runs/x/model.onnx).
    checkpoint = resolve_model_path(source)
    return checkpoint.parent / (checkpoint.name + (".int8.onnx" if int8 else ".onnx"))


def _parity(kind: str, predictor, session) -> dict:
    if kind == CLASSIFIER:
        return classifier_parity(predictor.model, session, predictor.vocab, predictor.max_length)
    return language_model_parity(predictor.model, session, predictor.vocab)


# How --int8 quantizes, recorded in model.json. x86 CPUs without VNNI (AVX2, AVX-512 before Cascade Lake) multiply
# uint8 activations by int8 weights with vpmaddubsw, which adds two products into a saturating int16: with 8-bit
# weights (|w| ≤ 127) a pair reaches 2·255·127 = 64770 and is clipped, so the same file scored differently by CPU
# (max |int8 - torch| 0.19 vs 0.008 on a tiny LSTM LM). 7-bit weights (reduce_range, |w| ≤ 64) keep every pair
# within 2·255·64 = 32640 ≤ 32767: the integer sums are exact on every CPU. Per-channel scales win back part of the
# lost bit (a trained 64-unit LSTM LM: max diff 0.27, top-1 agreement 0.994 on every CPU; 8-bit per-tensor on
# AVX2: 0.86 and 0.962; benchmarks/int8_choices.py).
QUANTIZATION = {"method": "dynamic", "format": "QOperator", "weights": "int8", "activations": "uint8",
                "per_channel": True, "reduce_range": True}
# The largest |int8 weight| whose uint8 × int8 pair sums cannot saturate int16 (see above).
SATURATION_FREE_WEIGHT = 64


def int8_weight_extremes(graph: onnx.ModelProto) -> dict[str, int]:
    """{initializer name: max |value|} over the graph's int8 tensors (the quantized weights)."""
    from onnx import numpy_helper

    return {t.name: int(abs(numpy_helper.to_array(t).astype("int16")).max(initial=0))
            for t in graph.graph.initializer if t.data_type == onnx.TensorProto.INT8}


def quantize_int8(float_path: Path, out_path: Path) -> None:
    """ORT dynamic quantization (QUANTIZATION): int8 weights for MatMul and LSTM, activations quantized on the fly.
    ORT has no integer GRU or RNN kernel: those recurrences stay float32. Refuses a result whose weights could
    saturate on a CPU without VNNI (an onnxruntime whose reduce_range no longer means 7 bits)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs advice to run its shape-inference pre-pass through the root logger; the graphs here
    # carry their shapes already, so the notice is held back (errors still surface as exceptions).
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(float_path, out_path, weight_type=QuantType.QInt8,
                         per_channel=QUANTIZATION["per_channel"], reduce_range=QUANTIZATION["reduce_range"])
    finally:
        root.setLevel(level)
    too_wide = {name: peak for name, peak in int8_weight_extremes(onnx.load(out_path)).items()
                if peak > SATURATION_FREE_WEIGHT}
    if too_wide:
        raise ExportError(f"int8 weights exceed ±{SATURATION_FREE_WEIGHT} ({too_wide}): they would saturate on "
                          "x86 CPUs without VNNI; nothing written")


def export_onnx(source, out: str | Path | None = None, int8: bool = False, tolerance: float = TOLERANCE,
                threads: int | None = None) -> ExportResult:
    """Export ``source`` (a model/run folder, a Classifier or a LanguageModel) to ONNX; see the module docstring.

    The float32 graph must match the PyTorch model within ``tolerance`` (max abs difference) or nothing is
    written. With ``int8`` the quantized graph is written instead; its difference is measured and reported
    (int8 is not expected to meet a float tolerance: measure accuracy with ``rnnkit eval --runtime onnx``).
    """
    if not (isinstance(tolerance, int | float) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number, got {tolerance!r}")
    kind, predictor = _load(source)
    out = Path(out) if out is not None else default_output(source, int8)
    if out.suffix != ".onnx":
        raise ValueError(f"out must name a .onnx file, got {str(out)!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = predictor.model.float().eval()
    graph = classifier_graph(model) if kind == CLASSIFIER else language_model_graph(model)
    # A full disk (or any OS error) while the files are written names the file asked for; the temporary
    # folder goes with the error, so nothing partial is left and any earlier export stays.
    with reported_as(out), tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        float_path = Path(tmp) / "float.onnx"
        onnx.save(graph, float_path)
        parity = {"float32": _parity(kind, predictor, make_session(float_path, threads)), "tolerance": tolerance}
        if parity["float32"]["max_abs_diff"] > tolerance:
            raise ExportError(f"parity check failed: max |onnx - torch| = {parity['float32']['max_abs_diff']:.3g} "
                              f"> tolerance {tolerance:g}; nothing written")
        written = float_path
        if int8:
            written = Path(tmp) / "int8.onnx"
            quantize_int8(float_path, written)
            parity["int8"] = _parity(kind, predictor, make_session(written, threads))
        meta = {"format": "rnnkit-onnx", "format_version": SIDECAR_FORMAT, "kind": kind, "int8": int8,
                "quantization": QUANTIZATION if int8 else None,
                "onnx_file": out.name, **INTERFACE[kind], "vocab": predictor.vocab.to_dict(),
                "pad_id": predictor.vocab.pad_id, "unk_id": predictor.vocab.unk_id,
                "tokenizer": predictor.tokenizer.to_config(), "model_config": asdict(model.config),
                "parity": parity}
        if kind == CLASSIFIER:
            meta.update(labels=list(predictor.labels), max_length=predictor.max_length)
        side_tmp = Path(tmp) / "model.json"
        side_tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
        # The sidecar first: a reader that finds the new graph finds its vocabulary.
        os.replace(side_tmp, sidecar_path(out))
        os.replace(written, out)
    return ExportResult(out, sidecar_path(out), kind, parity, int8, out.stat().st_size)
