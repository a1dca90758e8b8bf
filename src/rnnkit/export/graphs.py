"""Whole-model ONNX graphs: a bare recurrent layer, a classifier, a language model step.

Inputs and outputs (B batch and T steps are dynamic in every graph):

    layer       input (T, B, D) [(B, T, D) batch_first], lengths int64 (B,) if with_lengths,
                h0 [and c0] (L·dirs, B, H) if with_state  →  output (T, B, dirs·H), h_n [, c_n]
    classifier  ids int64 (B, T), lengths int64 (B,)  →  logits (B, C), probabilities (B, C)
                (an ensemble's logits are the log of its members' mean probabilities, as in torch)
    language    ids int64 (B, T), h0 [and c0] (L, B, H)  →  logits (B, T, V), h_n [, c_n] (L, B, H)
    model       T = 1 is one generation step; feed h_n back as h0. Start from zeros.
"""

from __future__ import annotations

import math

import onnx

from rnnkit.cells import LSTMCell
from rnnkit.export.graph import FLOAT, INT32, INT64, GraphBuilder
from rnnkit.export.recurrent import ExportError, recurrent_stack, rows
from rnnkit.models.classifier import EnsembleClassifier, RNNClassifier
from rnnkit.models.language_model import RNNLanguageModel
from rnnkit.models.ngrams import BIGRAM_MULTIPLIER


def layer_graph(layer, with_lengths: bool = True, with_state: bool = False) -> onnx.ModelProto:
    """An rnnkit (or torch.nn-compatible) Recurrent layer on padded input; see the module docstring."""
    g = GraphBuilder()
    lead = layer.num_layers * layer.num_directions
    shape = ["batch", "time", layer.input_size] if layer.batch_first else ["time", "batch", layer.input_size]
    x = g.input("input", FLOAT, shape)
    if layer.batch_first:
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    seq_lens = g.op("Cast", [g.input("lengths", INT64, ["batch"])], to=INT32) if with_lengths else None
    is_lstm = layer.cell_type is LSTMCell
    state_shape = [lead, "batch", layer.hidden_size]
    h0 = g.input("h0", FLOAT, state_shape) if with_state else None
    c0 = g.input("c0", FLOAT, state_shape) if with_state and is_lstm else None
    y, h_n, c_n = recurrent_stack(g, layer, x, seq_lens, h0, c0, "rnn")
    if layer.batch_first:
        y = g.op("Transpose", [y], perm=[1, 0, 2])
    features = layer.hidden_size * layer.num_directions
    g.output(y, "output", FLOAT, ["batch", "time", features] if layer.batch_first else ["time", "batch", features])
    g.output(h_n, "h_n", FLOAT, state_shape)
    if is_lstm:
        g.output(c_n, "c_n", FLOAT, state_shape)
    return g.model("rnnkit_layer", "rnnkit recurrent layer")


def _classifier_member(g: GraphBuilder, net: RNNClassifier, ids: str, lengths: str, prefix: str) -> str:
    """One RNNClassifier's logits (B, C); mirrors RNNClassifier.forward and models.pooling.pool in eval mode."""
    config, encoder = net.config, net.encoder
    table = g.weight(f"{prefix}encoder.embedding.weight", encoder.embedding.weight)
    x = g.op("Transpose", [g.op("Gather", [table, ids], axis=0)], perm=[1, 0, 2])  # (T, B, E)
    seq_lens = g.op("Cast", [lengths], to=INT32)
    y, h_n, _ = recurrent_stack(g, encoder.rnn, x, seq_lens, None, None, f"{prefix}encoder.rnn")
    dirs = encoder.rnn.num_directions
    # The top layer's final state of each direction, forward first: (dirs, B, H) → (B, dirs·H).
    top = g.op("Slice", [h_n, g.ints([-dirs]), g.ints([2**62]), g.ints([0])])
    h_last = g.op("Reshape", [g.op("Transpose", [top], perm=[1, 0, 2]), g.ints([0, -1])])
    valid = g.op("Unsqueeze", [g.time_mask(lengths, g.dim(ids, 1)), g.ints([2])])  # (T, B, 1) bool
    valid_f = g.op("Cast", [valid], to=FLOAT)
    if config.pool_embeddings:
        # [h_t; e_t] with e_t zero past each length, and the last valid token's embedding beside the final state.
        y = g.op("Concat", [y, g.op("Mul", [x, valid_f])], axis=2)
        last_ids = g.op("GatherElements", [ids, g.op("Unsqueeze", [g.op("Sub", [lengths, g.ints(1)]),
                                                                     g.ints([1])])], axis=1)
        last = g.op("Squeeze", [g.op("Gather", [table, last_ids], axis=0), g.ints([1])])
        h_last = g.op("Concat", [h_last, last], axis=1)
    pooled = []
    for part in net.parts:
        if part == "last":
            pooled.append(h_last)
        elif part == "mean":
            total = g.op("ReduceSum", [g.op("Mul", [y, valid_f]), g.ints([0])], keepdims=0)
            count = g.op("Unsqueeze", [g.op("Cast", [lengths], to=FLOAT), g.ints([1])])
            pooled.append(g.op("Div", [total, count]))
        else:
            masked = g.op("Where", [valid, y, g.scalar(-math.inf)])
            pooled.append(g.op("ReduceMax", [masked, g.ints([0])], keepdims=0))
    features = pooled[0] if len(pooled) == 1 else g.op("Concat", pooled, axis=1)
    if config.ngrams == "features":
        features = g.op("Concat", [features, _ngram_bag(g, net.ngrams, ids, lengths, prefix)], axis=1)
    logits = g.linear(features, net.head.weight, net.head.bias, f"{prefix}head")
    if config.ngrams == "logits":
        logits = g.op("Add", [logits, _ngram_bag(g, net.ngrams, ids, lengths, prefix)])
    return logits


def _ngram_bag(g: GraphBuilder, bag, ids: str, lengths: str, prefix: str) -> str:
    """(B, D): models/ngrams.py's NgramBag — unigram and hashed-bigram rows times their weight (1 or the idf),
    over the square root of the sum of the squared weights."""
    valid = g.op("Transpose", [g.time_mask(lengths, g.dim(ids, 1))], perm=[1, 0])  # (B, T)
    ids = g.op("Where", [valid, ids, g.ints(bag.pad_id)])
    unigram_ok = g.op("And", [valid, g.op("Not", [g.op("Equal", [ids, g.ints(bag.pad_id)])])])
    first = g.op("Slice", [ids, g.ints([0]), g.ints([-1]), g.ints([1])])
    second = g.op("Slice", [ids, g.ints([1]), g.ints([2**62]), g.ints([1])])
    hashed = g.op("Mod", [g.op("Add", [g.op("Mul", [first, g.ints(BIGRAM_MULTIPLIER)]), second]),
                          g.ints(bag.buckets)])
    indices = g.op("Concat", [ids, g.op("Add", [hashed, g.ints(bag.vocab_size)])], axis=1)
    bigram_ok = g.op("Slice", [valid, g.ints([1]), g.ints([2**62]), g.ints([1])])
    weights = g.op("Cast", [g.op("Concat", [unigram_ok, bigram_ok], axis=1)], to=FLOAT)
    if bag.idf is not None:
        weights = g.op("Mul", [weights, g.op("Gather", [g.weight(f"{prefix}ngrams.idf", bag.idf), indices], axis=0)])
    norm = g.op("Max", [g.op("ReduceSum", [g.op("Mul", [weights, weights]), g.ints([1])], keepdims=1),
                        g.scalar(1.0)])
    weights = g.op("Div", [weights, g.op("Sqrt", [norm])])
    table = g.weight(f"{prefix}ngrams.table.weight", bag.table.weight)
    rows = g.op("Gather", [table, indices], axis=0)  # (B, N, D)
    return g.op("ReduceSum", [g.op("Mul", [rows, g.op("Unsqueeze", [weights, g.ints([2])])]), g.ints([1])],
                keepdims=0)


def classifier_graph(model) -> onnx.ModelProto:
    """An RNNClassifier or EnsembleClassifier; see the module docstring."""
    if not isinstance(model, RNNClassifier | EnsembleClassifier):
        raise ExportError(f"expected an RNNClassifier or EnsembleClassifier, got {type(model).__name__}")
    g = GraphBuilder()
    ids, lengths = g.input("ids", INT64, ["batch", "time"]), g.input("lengths", INT64, ["batch"])
    if isinstance(model, RNNClassifier):
        logits = _classifier_member(g, model, ids, lengths, "")
    else:
        # log(mean_m softmax(z_m)) = logsumexp_m(log_softmax(z_m)) - log M, as EnsembleClassifier computes it.
        members = [g.op("Unsqueeze", [g.op("LogSoftmax", [_classifier_member(g, m, ids, lengths, f"m{i}.")],
                                           axis=1), g.ints([0])]) for i, m in enumerate(model.members)]
        stacked = g.op("Concat", members, axis=0)
        total = g.op("ReduceLogSumExp", [stacked, g.ints([0])], keepdims=0)
        logits = g.op("Sub", [total, g.scalar(math.log(len(model.members)))])
    classes = model.members[0].head.out_features if isinstance(model, EnsembleClassifier) else model.head.out_features
    g.output(logits, "logits", FLOAT, ["batch", classes])
    g.output(g.op("Softmax", [logits], axis=1), "probabilities", FLOAT, ["batch", classes])
    return g.model("rnnkit_classifier", "ids (B, T), lengths (B,) → logits, probabilities (B, C)")


def _layer_norm(g: GraphBuilder, x: str, norm, base: str) -> str:
    """torch.nn.LayerNorm over the last axis (ONNX LayerNormalization, opset 17 on)."""
    return g.op("LayerNormalization", [x, g.weight(f"{base}.weight", norm.weight), g.weight(f"{base}.bias", norm.bias)],
                axis=-1, epsilon=float(norm.eps))


def _gelu(g: GraphBuilder, x: str) -> str:
    """torch's exact GELU, x·(1 + erf(x/√2))/2 (ONNX's own Gelu operator needs opset 20)."""
    erf = g.op("Erf", [g.op("Mul", [x, g.scalar(1 / math.sqrt(2))])])
    return g.op("Mul", [g.op("Mul", [x, g.scalar(0.5)]), g.op("Add", [erf, g.scalar(1.0)])])


def _residual_adds(g: GraphBuilder, x: str, out: str, block, base: str) -> str:
    """models/residual.py's block after its recurrence, in eval mode: x + out, then + MLP(LayerNorm(x))."""
    x = g.op("Add", [x, out])
    if block.mlp is None:
        return x
    mlp = block.mlp
    up = g.linear(_layer_norm(g, x, mlp.norm, f"{base}.mlp.norm"), mlp.up.weight, mlp.up.bias, f"{base}.mlp.up")
    return g.op("Add", [x, g.linear(_gelu(g, up), mlp.down.weight, mlp.down.bias, f"{base}.mlp.down")])


def language_model_graph(model: RNNLanguageModel) -> onnx.ModelProto:
    """An RNNLanguageModel run over T steps from a given state; see the module docstring."""
    if not isinstance(model, RNNLanguageModel):
        raise ExportError(f"expected an RNNLanguageModel, got {type(model).__name__}")
    g = GraphBuilder()
    config = model.config
    layers, hidden = len(model.layers), config.hidden_size
    state_shape = [layers, "batch", hidden]
    ids = g.input("ids", INT64, ["batch", "time"])
    h0 = g.input("h0", FLOAT, state_shape)
    c0 = g.input("c0", FLOAT, state_shape) if model.is_lstm else None
    x = g.op("Transpose", [g.op("Gather", [g.weight("embedding.weight", model.embedding.weight), ids], axis=0)],
             perm=[1, 0, 2])
    if model.inlet is not None:
        x = g.linear(x, model.inlet.weight, model.inlet.bias, "inlet")
    h_finals, c_finals = [], []
    for k, layer in enumerate(model.layers):
        h_k, c_k = rows(g, h0, k, 1), rows(g, c0, k, 1)
        block = None if model.blocks is None else model.blocks[k]
        read = x if block is None else _layer_norm(g, x, block.norm, f"blocks.{k}.norm")
        out, h_n, c_n = recurrent_stack(g, layer, read, None, h_k or None, c_k or None, f"layers.{k}")
        x = out if block is None else _residual_adds(g, x, out, block, f"blocks.{k}")
        h_finals.append(h_n)
        c_finals.append(c_n)
    if model.final_norm is not None:
        x = _layer_norm(g, x, model.final_norm, "final_norm")
    if model.projection is not None:
        x = g.linear(x, model.projection.weight, None, "projection")
    logits = g.op("Transpose", [g.linear(x, model.decoder.weight, model.decoder.bias, "decoder")], perm=[1, 0, 2])
    g.output(logits, "logits", FLOAT, ["batch", "time", model.decoder.out_features])
    concat = lambda parts: parts[0] if len(parts) == 1 else g.op("Concat", parts, axis=0)  # noqa: E731
    g.output(concat(h_finals), "h_n", FLOAT, state_shape)
    if c0 is not None:
        g.output(concat(c_finals), "c_n", FLOAT, state_shape)
    return g.model("rnnkit_language_model", "ids (B, T), state (L, B, H) → logits (B, T, V), state")


__all__ = ["layer_graph", "classifier_graph", "language_model_graph", "ExportError"]
