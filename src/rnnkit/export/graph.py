"""A small builder over ``onnx.helper``: unique names, initializers from tensors, one call per node.

rnnkit writes its ONNX graphs node by node instead of tracing them with torch.onnx: the recurrent layers map
one to one onto ONNX's RNN/GRU/LSTM operators (with ``sequence_lens`` for padded batches), and writing them
directly is what keeps GRU's ``linear_before_reset`` and the gate orders exactly right (see ``recurrent.py``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor

# Opset 18: the Reduce* operators take their axes as an input; ORT 1.32 runs it on every kernel used here.
OPSET = 18
# IR version 10 (ONNX 1.16) keeps the files loadable by older runtimes than the one pinned here.
IR_VERSION = 10
FLOAT, INT64, INT32, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL


class GraphBuilder:
    """Collects nodes, initializers, inputs and outputs; ``model()`` checks and returns the ModelProto."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._used: Counter = Counter()
        self._constants: dict[tuple, str] = {}
        self._types: dict[str, int] = {}  # element types of values declared with ``typed`` (body inputs)

    def name(self, base: str) -> str:
        """``base``, or ``base_2``, ``base_3``... when taken."""
        self._used[base] += 1
        return base if self._used[base] == 1 else f"{base}_{self._used[base]}"

    def weight(self, base: str, value: Tensor | np.ndarray) -> str:
        """An initializer in float32 (whatever the model's dtype: the exported graph runs in float32)."""
        array = value.detach().cpu().float().numpy() if isinstance(value, Tensor) else np.asarray(value, np.float32)
        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def ints(self, values) -> str:
        """A shared int64 constant (shapes, axes, slice bounds)."""
        key = ("i64", tuple(int(v) for v in np.atleast_1d(values)), np.ndim(values))
        if key not in self._constants:
            name = self.name("const_i64")
            self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
            self._constants[key] = name
        return self._constants[key]

    def scalar(self, value: float) -> str:
        """A shared float32 scalar constant."""
        key = ("f32", float(value))
        if key not in self._constants:
            name = self.name("const_f32")
            self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
            self._constants[key] = name
        return self._constants[key]

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, **attrs):
        """Add a node; returns its output name, or a list of names when it has several."""
        names = outputs if isinstance(outputs, list) else [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=self.name(f"{op_type}_node"), **attrs))
        return names[0] if len(names) == 1 else names

    def typed(self, base: str, elem_type: int) -> str:
        """A fresh value name of a known element type (a loop body's input)."""
        name = self.name(base)
        self._types[name] = elem_type
        return name

    def input(self, name: str, elem_type: int, shape: list) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        self._used[name] += 1
        return name

    def output(self, value: str, name: str, elem_type: int, shape: list) -> str:
        """Expose ``value`` as the graph output ``name`` (through an Identity when the names differ)."""
        if value != name:
            self.op("Identity", [value], [name])
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def subgraph(self) -> GraphBuilder:
        """A builder for a loop body: its own nodes, but names, initializers and constants shared with this one
        (a body reads the outer graph's weights by name)."""
        body = GraphBuilder()
        body.initializers, body._used, body._constants = self.initializers, self._used, self._constants
        return body

    def body(self, graph_name: str, inputs: list[str], outputs: list[str]) -> onnx.GraphProto:
        """This builder's nodes as a Scan/Loop body with untyped-shape float inputs and outputs of those names."""
        value = lambda name: helper.make_tensor_value_info(name, self._types.get(name, FLOAT), None)  # noqa: E731
        return helper.make_graph(self.nodes, graph_name, [value(n) for n in inputs], [value(n) for n in outputs])

    def model(self, graph_name: str, doc: str = "") -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers,
                                  doc_string=doc)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="rnnkit")
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        return model

    # -- small compositions used by several graphs ------------------------------
    def time_mask(self, lengths: str, steps: str) -> str:
        """(T, B) bool, True where step t < lengths[b]; ``steps`` is the scalar T (int64)."""
        t = self.op("Range", [self.ints(0), steps, self.ints(1)])
        return self.op("Less", [self.op("Unsqueeze", [t, self.ints([1])]),
                                self.op("Unsqueeze", [lengths, self.ints([0])])])

    def dim(self, value: str, axis: int) -> str:
        """The size of ``value``'s ``axis`` as an int64 scalar."""
        shape = self.op("Shape", [value])
        return self.op("Gather", [shape, self.ints(axis)], axis=0)

    def linear(self, x: str, weight: Tensor, bias: Tensor | None, base: str) -> str:
        """x·Wᵀ + b as MatMul (+ Add), the form ORT's dynamic int8 quantization recognises."""
        y = self.op("MatMul", [x, self.weight(f"{base}.weight_t", weight.detach().t())])
        return y if bias is None else self.op("Add", [y, self.weight(f"{base}.bias", bias)])
