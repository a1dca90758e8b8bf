"""Does an exported graph fit the JSON beside it? Checked when it is loaded, before it predicts anything.

The JSON holds the vocabulary, the labels and the network's shape; the graph holds the weights. Edited,
mixed up (a language model's .onnx beside a classifier's JSON) or cut short, they would still run — with
token ids read against the wrong table, or with ONNX Runtime's own complaint about a missing input. Each
mismatch is refused here with the file and the field that disagree.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from rnnkit.export.recurrent import ExportError
from rnnkit.saved.kinds import CLASSIFIER, LANGUAGE_MODEL

KIND_TEXT = {CLASSIFIER: "a classifier", LANGUAGE_MODEL: "a language model"}
# What each kind's graph takes and gives, as the export writes it into the JSON (and checks here).
INTERFACE = {
    CLASSIFIER: {
        "inputs": {"ids": "int64 (batch, time): token ids, padded with vocab pad id past each length",
                   "lengths": "int64 (batch,): tokens per row, >= 1"},
        "outputs": {"logits": "float32 (batch, classes)", "probabilities": "float32 (batch, classes): softmax"},
    },
    LANGUAGE_MODEL: {
        "inputs": {"ids": "int64 (batch, time)", "h0": "float32 (layers, batch, hidden): zeros to start",
                   "c0": "float32 (layers, batch, hidden), LSTM only"},
        "outputs": {"logits": "float32 (batch, time, vocab): next-token scores",
                    "h_n": "float32 (layers, batch, hidden): feed back as h0", "c_n": "LSTM only: feed back as c0"},
    },
}


def _names(values) -> list[str]:
    return [v.name for v in values]


def _dims(value) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def graph_kind(graph: onnx.GraphProto) -> str | None:
    """What the graph's inputs say it is: "classifier" (ids, lengths), "language_model" (ids, h0) or None."""
    inputs = set(_names(graph.input))
    if {"ids", "h0"} <= inputs:
        return LANGUAGE_MODEL
    if {"ids", "lengths"} <= inputs:
        return CLASSIFIER
    return None


def expected_interface(meta: dict) -> tuple[set[str], set[str]]:
    """(inputs, outputs) the sidecar's kind runs with: ``INTERFACE``, LSTM-only state for LSTMs."""
    interface = INTERFACE[meta["kind"]]
    lstm_only = set() if meta.get("model_config", {}).get("cell") == "lstm" else {"c0", "c_n"}
    return set(interface["inputs"]) - lstm_only, set(interface["outputs"]) - lstm_only


def embedding_rows(graph: onnx.GraphProto) -> dict[str, int]:
    """{table: rows} for every table looked up with the token ids (one per ensemble member)."""
    tables = {t.name: list(t.dims) for t in graph.initializer}
    return {n.input[0]: tables[n.input[0]][0] for n in graph.node
            if n.op_type == "Gather" and n.input[1:2] == ["ids"] and n.input[0] in tables}


def check_sidecar_fits_graph(model_path: Path, sidecar: Path, meta: dict) -> None:
    """Raise ExportError naming the file and field where ``meta`` (read from ``sidecar``) and the graph differ."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    kind = graph_kind(graph)
    if kind != meta["kind"]:
        holds = KIND_TEXT.get(kind, f"a graph with inputs {_names(graph.input)}")
        raise ExportError(f"{model_path} holds {holds}, but {sidecar} says kind {meta['kind']!r}: the two files "
                          "come from different exports")
    inputs, outputs = expected_interface(meta)
    for role, wanted, present in (("inputs", inputs, graph.input), ("outputs", outputs, graph.output)):
        if wanted != set(_names(present)):
            raise ExportError(f"{model_path} has {role} {sorted(_names(present))}; {sidecar} (kind {meta['kind']!r}, "
                              f"cell {meta.get('model_config', {}).get('cell')!r}) needs {sorted(wanted)}")
    vocab_size = len(meta["vocab"]["tokens"])
    for table, rows in embedding_rows(graph).items():
        if rows != vocab_size:
            raise ExportError(f"{sidecar}: field 'vocab' has {vocab_size} tokens, but {model_path}'s embedding "
                              f"{table!r} has {rows} rows")
    field, scored = ("labels", "classes") if kind == CLASSIFIER else ("vocab", "tokens")
    if not isinstance(meta.get(field), list | dict):
        raise ExportError(f"{sidecar}: field {field!r} is missing or not a list")
    classes = len(meta["labels"]) if kind == CLASSIFIER else vocab_size
    logits = _dims(next(o for o in graph.output if o.name == "logits"))[-1]
    if isinstance(logits, int) and logits and logits != classes:
        raise ExportError(f"{sidecar}: field {field!r} has {classes} entries, but {model_path} scores {logits} "
                          f"{scored}")
    if kind == LANGUAGE_MODEL:
        _check_state_shape(graph, model_path, sidecar, meta["model_config"])


def _check_state_shape(graph: onnx.GraphProto, model_path: Path, sidecar: Path, config: dict) -> None:
    layers, _, hidden = _dims(next(i for i in graph.input if i.name == "h0"))
    for field, wanted, got in (("num_layers", config.get("num_layers"), layers),
                               ("hidden_size", config.get("hidden_size"), hidden)):
        if isinstance(got, int) and got and got != wanted:
            raise ExportError(f"{sidecar}: field 'model_config.{field}' is {wanted!r}, but {model_path}'s state "
                              f"h0 has {got}")
