"""Inference speed of one model four ways, in one process: torch.nn, rnnkit (backend auto), ORT float32, ORT int8.

Models: the default BBC classifier (a saved one with --classifier, else the default config with random weights
and BBC's vocabulary size) and the default character language model (2 x 384 GRU; --language-model for a saved
one). "torch.nn" is the same network with each rnnkit layer replaced by torch.nn.GRU/LSTM/RNN holding the same
weights, fed a PackedSequence when lengths differ (how a torch.nn user runs padded batches).

Rows:
  classifier  batch 1   latency of one text of --length tokens (ms)
  classifier  batch 64  texts/s over batches of random lengths in [--length/4, --length]
  LM step     batch 1   latency of one generation step with the state carried (ms)
  LM window   batch 64  tokens/s over 64 x 100-token windows with the state carried
Each variant runs in alternating rounds (benchmarks/engine.py's ``measure``); medians are reported, with the
ratio to rnnkit auto (> 1: faster than rnnkit). File sizes: the safetensors checkpoint, float and int8 ONNX.

With --accuracy (needs --classifier): accuracy and macro-F1 of torch, ORT float32 and ORT int8 on the test split
of the bundled data set the classifier was trained on (BBC News for a bare `rnnkit train`), and how many test
predictions change; with --language-model too, its bits per token on its bundled corpus's test split.

Usage:  python benchmarks/export.py [--classifier RUN] [--language-model RUN] [--threads 1] [--quick]
                                    [--accuracy] [--skip-speed]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

sys.path.insert(0, str(Path(__file__).parent))
from engine import measure  # noqa: E402

from rnnkit.api.classifier import Classifier  # noqa: E402
from rnnkit.api.language_model import LanguageModel  # noqa: E402
from rnnkit.data import Vocabulary  # noqa: E402
from rnnkit.data.tokenizers import CharTokenizer, WordTokenizer  # noqa: E402
from rnnkit.export import export_onnx  # noqa: E402
from rnnkit.export.runtime import OnnxClassifierNet, OnnxLanguageModelNet, make_session  # noqa: E402
from rnnkit.layers import Recurrent  # noqa: E402
from rnnkit.models.classifier import RNNClassifier  # noqa: E402
from rnnkit.models.config import ClassifierConfig, LanguageModelConfig  # noqa: E402
from rnnkit.models.language_model import RNNLanguageModel  # noqa: E402

TORCH_NN = {"LSTMCell": nn.LSTM, "GRUCell": nn.GRU, "RNNCell": nn.RNN}


class TorchNNLayer(nn.Module):
    """torch.nn's module with an rnnkit layer's weights, called as rnnkit's layer is: (x, state, lengths)."""

    def __init__(self, layer: Recurrent):
        super().__init__()
        kw = dict(input_size=layer.input_size, hidden_size=layer.hidden_size, num_layers=layer.num_layers,
                  bias=layer.bias, batch_first=layer.batch_first, bidirectional=layer.bidirectional)
        if layer.cell_type.__name__ == "RNNCell":
            kw["nonlinearity"] = layer.cell_for(0, 0).nonlinearity
        self.module = TORCH_NN[layer.cell_type.__name__](**kw)
        self.module.load_state_dict(layer.state_dict())

    def forward(self, x, state=None, lengths=None):
        if lengths is None or bool((lengths == x.shape[1]).all()):
            return self.module(x, state)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.module(packed, state)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0], final


def torch_nn_twin(model: nn.Module, template: nn.Module) -> nn.Module:
    """A copy of ``model`` (built by ``template``) whose rnnkit layers are torch.nn modules."""
    twin = template
    twin.load_state_dict(model.state_dict())
    for child in list(twin.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, Recurrent):
                setattr(child, attr, TorchNNLayer(sub))
    return twin.eval()


def file_sizes(predictor, run_dir: Path) -> tuple[dict[str, float], Path, Path]:
    """MB of the checkpoint, float and int8 ONNX; the ONNX paths."""
    predictor.save(run_dir / "model")
    f32 = export_onnx(predictor, run_dir / "model.onnx")
    q8 = export_onnx(predictor, run_dir / "model.int8.onnx", int8=True)
    ckpt = sum(p.stat().st_size for p in (run_dir / "model").iterdir())
    return {"checkpoint": ckpt / 1e6, "onnx": f32.size_bytes / 1e6, "onnx int8": q8.size_bytes / 1e6}, f32.path, \
        q8.path


def classifier_rows(clf: Classifier, length: int, threads: int, rounds: int, round_s: float, work: Path):
    sizes, f32, q8 = file_sizes(clf, work / "classifier")
    vocab, config = clf.vocab, clf.model.config
    nets = {"torch.nn": torch_nn_twin(clf.model, RNNClassifier(config, len(vocab), len(clf.labels), vocab.pad_id)),
            "rnnkit auto": clf.model.eval(),
            "ORT float32": OnnxClassifierNet(make_session(f32, threads)),
            "ORT int8": OnnxClassifierNet(make_session(q8, threads))}
    g = torch.Generator().manual_seed(0)
    low = len(vocab.special_ids)
    one = torch.randint(low, len(vocab), (1, length), generator=g), torch.tensor([length])
    lengths = torch.randint(length // 4, length + 1, (64,), generator=g)
    ids = torch.randint(low, len(vocab), (64, int(lengths.max())), generator=g)
    ids[torch.arange(ids.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)] = vocab.pad_id
    rows = []
    with torch.inference_mode():
        calls = {name: (lambda n=net: n(*one)) for name, net in nets.items()}
        rows.append((f"classifier batch 1, {length} tokens: ms", {k: 1e3 / v for k, v in
                                                                  measure(calls, 1, rounds, round_s).items()}, True))
        calls = {name: (lambda n=net: n(ids, lengths)) for name, net in nets.items()}
        rows.append(("classifier batch 64: texts/s", measure(calls, 64, rounds, round_s), False))
    return rows, sizes


def language_model_rows(lm: LanguageModel, threads: int, rounds: int, round_s: float, work: Path):
    sizes, f32, q8 = file_sizes(lm, work / "lm")
    config, vocab = lm.model.config, lm.vocab
    layers = len(lm.model.layers)
    nets = {"torch.nn": torch_nn_twin(lm.model, RNNLanguageModel(config, len(vocab), vocab.pad_id)),
            "rnnkit auto": lm.model.eval()}
    for name, path in (("ORT float32", f32), ("ORT int8", q8)):
        nets[name] = OnnxLanguageModelNet(make_session(path, threads), layers, config.hidden_size,
                                          config.cell == "lstm")
    g = torch.Generator().manual_seed(0)
    low = len(vocab.special_ids)
    step = torch.randint(low, len(vocab), (1, 1), generator=g)
    window = torch.randint(low, len(vocab), (64, 100), generator=g)
    rows = []
    with torch.inference_mode():
        states = {name: net(step)[1] for name, net in nets.items()}
        calls = {name: (lambda n=net, s=states[name]: n(step, s)) for name, net in nets.items()}
        rows.append(("LM step batch 1: ms", {k: 1e3 / v for k, v in measure(calls, 1, rounds, round_s).items()},
                     True))
        states = {name: net(window[:, :1])[1] for name, net in nets.items()}
        calls = {name: (lambda n=net, s=states[name]: n(window, s)) for name, net in nets.items()}
        rows.append(("LM window batch 64 x 100: tokens/s", measure(calls, 64 * 100, rounds, round_s), False))
    return rows, sizes


def accuracy_rows(clf: Classifier, threads: int, work: Path) -> None:
    from rnnkit.data import load_bundled
    from rnnkit.export import load_onnx

    name = clf.meta.get("data_config", {}).get("data", "bbc-news")
    test = load_bundled(name).test
    f32 = export_onnx(clf, work / "acc" / "model.onnx")
    q8 = export_onnx(clf, work / "acc" / "model.int8.onnx", int8=True)
    variants = {"torch": clf, "ORT float32": load_onnx(f32.path, threads), "ORT int8": load_onnx(q8.path, threads)}
    encoded = clf.encode(test, with_labels=True)
    predictions = {k: v._task().predict_proba(v.model, encoded).argmax(1) for k, v in variants.items()}
    print(f"{name} test split, {len(test)} texts:")
    for k, v in variants.items():
        report = v.evaluate(test)
        changed = int((predictions[k] != predictions["torch"]).sum())
        print(f"  {k:12} accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  "
              f"predictions differing from torch: {changed}")


def lm_accuracy_rows(lm: LanguageModel, threads: int, work: Path) -> None:
    from rnnkit.data import load_bundled
    from rnnkit.export import load_onnx

    name = lm.meta.get("corpus_config", {}).get("data", "shakespeare")
    test = load_bundled(name).test
    f32 = export_onnx(lm, work / "lm-acc" / "model.onnx")
    q8 = export_onnx(lm, work / "lm-acc" / "model.int8.onnx", int8=True)
    print(f"{name} test split, {len(test)} characters:")
    for k, v in {"torch": lm, "ORT float32": load_onnx(f32.path, threads),
                 "ORT int8": load_onnx(q8.path, threads)}.items():
        print(f"  {k:12} bits per token {v.evaluate_text(test)['bits_per_token']:.4f}")


def print_table(rows, names):
    print(f"{'':40}" + "".join(f"{n:>14}" for n in names))
    for label, values, lower_is_better in rows:
        base = values["rnnkit auto"]
        print(f"{label:40}" + "".join(f"{values[n]:>14.3f}" for n in names))
        ratios = [base / values[n] if lower_is_better else values[n] / base for n in names]
        print(f"{'  ratio to rnnkit auto (>1 faster)':40}" + "".join(f"{r:>14.2f}" for r in ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classifier", help="a saved classifier (default: the default config, random weights)")
    parser.add_argument("--language-model", help="a saved language model (default: the default config)")
    parser.add_argument("--length", type=int, default=400, help="tokens of the batch-1 text (default: 400)")
    parser.add_argument("--threads", type=int, default=1, help="torch and ORT intra-op threads (default: 1)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--accuracy", action="store_true", help="test-set accuracy: torch, ORT float32, ORT int8")
    parser.add_argument("--skip-speed", action="store_true", help="only the accuracy section")
    args = parser.parse_args()
    if args.accuracy and not args.classifier:
        parser.error("--accuracy needs --classifier RUN (a trained model)")
    torch.set_num_threads(args.threads)
    rounds, round_s = (3, 0.2) if args.quick else (7, 0.5)
    torch.manual_seed(0)
    clf = Classifier.load(args.classifier) if args.classifier else Classifier(
        RNNClassifier(ClassifierConfig(), 17254, 5), WordTokenizer(),
        Vocabulary(["<pad>", "<unk>"] + [f"w{i}" for i in range(17252)]), list("abcde"), 800)
    lm = LanguageModel.load(args.language_model) if args.language_model else LanguageModel(
        RNNLanguageModel(LanguageModelConfig(), 67), CharTokenizer(),
        Vocabulary(["<pad>", "<unk>"] + [chr(32 + i) for i in range(65)]))
    print(f"threads {args.threads} (torch and ORT), pid {os.getpid()}; classifier {clf.model.config.cell} "
          f"{clf.model.config.num_layers} x {clf.model.config.hidden_size}, LM {lm.model.config.cell} "
          f"{lm.model.config.num_layers} x {lm.model.config.hidden_size}")
    names = ["torch.nn", "rnnkit auto", "ORT float32", "ORT int8"]
    with tempfile.TemporaryDirectory() as tmp:
        if args.accuracy:
            accuracy_rows(clf, args.threads, Path(tmp))
            if args.language_model:
                lm_accuracy_rows(lm, args.threads, Path(tmp))
        if args.skip_speed:
            return
        rows, sizes = classifier_rows(clf, args.length, args.threads, rounds, round_s, Path(tmp))
        lm_rows, lm_sizes = language_model_rows(lm, args.threads, rounds, round_s, Path(tmp))
    print_table(rows + lm_rows, names)
    for what, s in (("classifier", sizes), ("language model", lm_sizes)):
        print(f"{what} files (MB): " + ", ".join(f"{k} {v:.2f}" for k, v in s.items()))
    print("int8 quantizes MatMul, Gather (the embedding) and LSTM; ORT has no integer GRU/RNN kernel.")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
