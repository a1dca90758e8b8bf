"""How ORT's dynamic int8 quantization options fare on this CPU, against the float model: the figures behind
``rnnkit export --int8``'s choice (rnnkit.export.onnx_export.QUANTIZATION).

Per model (an LSTM LM with random weights, the same trained for 30 steps, a GRU LM, an LSTM and a GRU classifier)
and per option: the export parity's max |int8 - torch| and top-1 agreement, on this CPU's default kernels and with
ORT's ``session.x64quantprecision`` (u8 x s8 products taken on the non-saturating u8 x u8 path: what a VNNI CPU
computes). Where the two columns differ, the option's weights saturate on this CPU.

Usage:  PYTHONPATH=src python benchmarks/int8_choices.py
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rnnkit.export.graphs import classifier_graph, language_model_graph  # noqa: E402
from rnnkit.export.parity import classifier_parity, language_model_parity  # noqa: E402
from tests.export.conftest import tiny_classifier, tiny_language_model  # noqa: E402
from tests.export.test_export_models import _trained_language_model  # noqa: E402

OPTIONS = {
    "s8 per-tensor": dict(weight_type=QuantType.QInt8),
    "s8 reduce_range": dict(weight_type=QuantType.QInt8, reduce_range=True),
    "s8 per-channel": dict(weight_type=QuantType.QInt8, per_channel=True),
    "s8 per-channel+reduce_range": dict(weight_type=QuantType.QInt8, per_channel=True, reduce_range=True),
    "u8 weights": dict(weight_type=QuantType.QUInt8),
}


def session(path: Path, exact: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    if exact:
        options.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def models():
    torch.manual_seed(0)
    yield "LSTM LM 32/64 random", tiny_language_model(cell="lstm", embedding_dim=32, hidden_size=64)
    yield "LSTM LM 32/64 trained 30 steps", _trained_language_model()
    torch.manual_seed(0)
    yield "GRU LM 32/64 random", tiny_language_model(cell="gru", embedding_dim=32, hidden_size=64)
    torch.manual_seed(0)
    yield "LSTM classifier 2x bi 32/64", tiny_classifier(cell="lstm", num_layers=2, bidirectional=True,
                                                        embedding_dim=32, hidden_size=64)
    torch.manual_seed(0)
    yield "GRU classifier 32/64", tiny_classifier(cell="gru", embedding_dim=32, hidden_size=64)


def main() -> None:
    logging.getLogger().setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        for name, predictor in models():
            model = predictor.model.float().eval()
            is_lm = not hasattr(predictor, "labels")
            float_path, quantized = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
            onnx.save(language_model_graph(model) if is_lm else classifier_graph(model), float_path)

            def parity(s, model=model, predictor=predictor, is_lm=is_lm):
                if is_lm:
                    return language_model_parity(model, s, predictor.vocab)
                return classifier_parity(model, s, predictor.vocab, predictor.max_length)

            print(f"== {name}")
            for option, kwargs in OPTIONS.items():
                quantize_dynamic(float_path, quantized, **kwargs)
                here, exact = parity(session(quantized, False)), parity(session(quantized, True))
                print(f"  {option:30s} this CPU: max|d| {here['max_abs_diff']:.4f} top-1 {here['top1_agreement']:.4f}"
                      f"   exact products: {exact['max_abs_diff']:.4f} {exact['top1_agreement']:.4f}")


if __name__ == "__main__":
    main()
