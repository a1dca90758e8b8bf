"""Run an exported model on ONNX Runtime behind the same objects as the torch path.

``load_onnx(path)`` returns a ``rnnkit.Classifier`` or ``rnnkit.LanguageModel`` whose network is an
ONNX Runtime session: ``predict``, ``predict_proba``, ``evaluate``, ``generate``, ``generate_iter`` and
``evaluate_text`` work unchanged (the tokenizer, vocabulary and labels come from the JSON beside the file),
so anything that serves those objects can serve an ONNX model by loading it with this function instead.

The session modules take and return torch tensors, shaped as the torch networks' calls are:
``OnnxClassifierNet(ids, lengths) → logits`` and ``OnnxLanguageModelNet(ids, state) → (logits, state)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.export.recurrent import ExportError
from rnnkit.saved.kinds import CLASSIFIER, MODEL_KINDS

SIDECAR_FORMAT = 1


def sidecar_path(model_path: str | Path) -> Path:
    """model.onnx → model.json (model.int8.onnx → model.int8.json)."""
    return Path(model_path).with_suffix(".json")


def resolve_onnx_path(path: str | Path) -> Path:
    """An .onnx file, or the run/checkpoint folder it was exported from (``rnnkit export``'s default output:
    FOLDER.onnx beside the checkpoint folder, runs/x/model → runs/x/model.onnx)."""
    from rnnkit.saved.folders import resolve_model_path

    p = Path(path)
    if p.is_dir():
        checkpoint = resolve_model_path(p)
        candidate = checkpoint.parent / (checkpoint.name + ".onnx")
        if not candidate.exists():
            raise FileNotFoundError(f"no {candidate} for {p}: run `rnnkit export {p} --format onnx` first, "
                                    "or give the .onnx file")
        return candidate
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such ONNX file")
    return p


def make_session(source, threads: int | None = None):
    """An ORT CPU session on a path or serialized model; ``threads`` caps intra-op threads (None: ORT's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's graph-optimisation notices are not the user's concern
    # int8 files whose weights use all 8 bits (exported before --int8 chose 7, or by another tool) would saturate
    # on x86 CPUs without VNNI; this option takes their products on the exact path there (no effect on float
    # graphs, nor on 7-bit weights, which cannot saturate).
    options.add_session_config_entry("session.x64quantprecision", "1")
    if threads is not None:
        options.intra_op_num_threads = threads
    source = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class _SessionNet(nn.Module):
    """Shared part: the session, and a place-holder parameter.

    The torch predictors read the device from ``next(model.parameters())``; the empty parameter says "CPU"
    and holds nothing.
    """

    def __init__(self, session, config=None):
        super().__init__()
        self.session = session
        self.config = config  # the exported network's typed config (from the sidecar), for display
        self.device_anchor = nn.Parameter(torch.empty(0), requires_grad=False)

    def state_dict(self, *args, **kwargs):
        # Classifier.save / LanguageModel.save would otherwise write a checkpoint holding no weights.
        raise TypeError("a model loaded from ONNX runs inference only: its weights live in the .onnx file; "
                        "save or retrain from the PyTorch checkpoint it was exported from")

    def _run(self, feeds: dict[str, np.ndarray]) -> list[Tensor]:
        return [torch.from_numpy(np.asarray(o)) for o in self.session.run(None, feeds)]


class OnnxClassifierNet(_SessionNet):
    """ids (B, T), lengths (B,) → logits (B, C), as RNNClassifier in eval mode."""

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return self._run({"ids": ids.cpu().numpy().astype(np.int64),
                          "lengths": torch.as_tensor(lengths).cpu().numpy().astype(np.int64)})[0]


class OnnxLanguageModelNet(_SessionNet):
    """ids (B, T), state → (logits (B, T, V), state); state as RNNLanguageModel's: one entry per layer."""

    def __init__(self, session, num_layers: int, hidden_size: int, is_lstm: bool, config=None):
        super().__init__(session, config)
        self.num_layers, self.hidden_size, self.is_lstm = num_layers, hidden_size, is_lstm

    def forward(self, ids: Tensor, state=None, lengths: Tensor | None = None):
        if lengths is not None:
            raise ValueError("the exported language model reads whole rows (lengths=None); pad nothing")
        batch = ids.shape[0]
        feeds = {"ids": ids.cpu().numpy().astype(np.int64)}
        if state is None:
            zeros = np.zeros((self.num_layers, batch, self.hidden_size), np.float32)
            feeds["h0"] = zeros
            if self.is_lstm:
                feeds["c0"] = zeros
        else:
            hs = [s[0] if self.is_lstm else s for s in state]
            feeds["h0"] = torch.cat(hs, 0).float().cpu().numpy()
            if self.is_lstm:
                feeds["c0"] = torch.cat([s[1] for s in state], 0).float().cpu().numpy()
        out = self._run(feeds)
        h_n = out[1].split(1, 0)
        new_state = [(h, c) for h, c in zip(h_n, out[2].split(1, 0), strict=True)] if self.is_lstm else list(h_n)
        return out[0], new_state


def read_sidecar(model_path: Path) -> dict:
    path = sidecar_path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: an exported model needs the JSON written beside it "
                                "(vocabulary, tokenizer, labels)")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != "rnnkit-onnx" or meta.get("kind") not in MODEL_KINDS:
        raise ValueError(f"{path} is not an rnnkit ONNX sidecar (format/kind fields missing or unknown)")
    return meta


def load_onnx(path: str | Path, threads: int | None = None):
    """A Classifier or LanguageModel running on ONNX Runtime; see the module docstring."""
    from rnnkit.data import Vocabulary, tokenizer_from_config

    model_path = resolve_onnx_path(path)
    meta = read_sidecar(model_path)
    vocab, tokenizer = Vocabulary.from_dict(meta["vocab"]), tokenizer_from_config(meta["tokenizer"])
    try:
        session = make_session(model_path, threads)
    except Exception as err:  # ORT raises its own exception types for unreadable or invalid files
        raise ExportError(f"{model_path}: ONNX Runtime cannot load it: {err}") from err
    from rnnkit.export.consistency import check_sidecar_fits_graph

    check_sidecar_fits_graph(model_path, sidecar_path(model_path), meta)
    from rnnkit.models.config import ClassifierConfig, LanguageModelConfig, from_dict, from_saved

    if meta["kind"] == CLASSIFIER:
        from rnnkit.saved.classifier import Classifier

        net = OnnxClassifierNet(session, from_dict(ClassifierConfig, meta["model_config"]))
        return Classifier(net, tokenizer, vocab, list(meta["labels"]), meta.get("max_length"),
                          {"onnx": str(model_path), **meta.get("metadata", {})})
    from rnnkit.saved.language_model import LanguageModel

    config = from_saved(LanguageModelConfig, meta["model_config"])
    net = OnnxLanguageModelNet(session, config.num_layers, config.hidden_size, config.cell == "lstm", config)
    return LanguageModel(net, tokenizer, vocab, {"onnx": str(model_path), **meta.get("metadata", {})})
