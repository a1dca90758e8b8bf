"""Export to ONNX and run on ONNX Runtime: ``export_onnx(folder)``, ``load_onnx("model.onnx").predict(...)``.

graph.py       a small builder over onnx.helper
recurrent.py   rnnkit layers as ONNX RNN/GRU/LSTM operators (gate orders, linear_before_reset, sequence_lens)
scan.py        layers with layer norm or zoneout: a Scan over time with the cell step written out
graphs.py      whole graphs: a layer, a classifier, a language model step
parity.py      the export-time check against the PyTorch model
onnx_export.py export_onnx: graph + parity + optional int8 + the JSON beside it
runtime.py     load_onnx: the same Classifier / LanguageModel objects, run by ONNX Runtime
"""

from rnnkit.export.graphs import classifier_graph, language_model_graph, layer_graph
from rnnkit.export.onnx_export import ExportResult, export_onnx
from rnnkit.export.recurrent import ExportError
from rnnkit.export.runtime import load_onnx

__all__ = ["export_onnx", "ExportResult", "ExportError", "load_onnx", "layer_graph", "classifier_graph",
           "language_model_graph"]
