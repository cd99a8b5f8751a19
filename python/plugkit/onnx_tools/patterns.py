"""Declaring the subgraphs a plugin replaces.

A :class:`Pattern` is written like the ONNX it matches::

    p = Pattern("scaled_relu")
    x = p.input("X")
    y = p.op("Mul", p.op("Relu", x), p.constant("alpha"))
    p.output(y)

and is matched with onnx-graphsurgeon's :class:`~onnx_graphsurgeon.GraphPattern`.
This module adds only what GraphPattern leaves to its caller:

- operand order: a pattern node whose op is commutative (``Add``, ``Mul``...)
  matches its inputs in either order;
- constants: ``p.constant(name, value)`` matches only an initializer or the
  output of a ``Constant`` node (exporters emit both) equal to ``value``;
  without ``value`` it matches any tensor, and the rewrite reads the value
  with :meth:`Match.constant` (None when it is computed at run time, which
  the rewrite reports). ``optional=True`` also matches the node without
  that input (for example ``ReduceMean`` axes, an attribute before opset 18
  and an input since);
- a :class:`Match` that names the matched nodes and tensors.

A :class:`Rewrite` pairs a pattern with a function that turns a match into the
plugin node's inputs and attributes (:class:`Replacement`), or refuses with
:class:`NotReplaceable` when the subgraph has the right shape but computes
something the plugin does not (a non-constant epsilon, a reduction over the
wrong axes...). Each op lists its rewrites in ``plugins/<op>/patterns.py``.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any, Callable, Sequence

import numpy as np
import onnx_graphsurgeon as gs
from onnx_graphsurgeon.logger import G_LOGGER

COMMUTATIVE_OPS = frozenset({"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal"})


@dataclasses.dataclass(frozen=True)
class Ref:
    """A tensor of a pattern: an input, a constant, or a node's output."""

    name: str
    kind: str  # "input" | "constant" | "node"


@dataclasses.dataclass
class _PatternNode:
    name: str
    op: str
    inputs: tuple[Ref, ...]
    check: Callable[[gs.Node], bool] | None
    output: Ref


@dataclasses.dataclass(frozen=True)
class _Constant:
    value: Any
    optional: bool


class Pattern:
    """A small dataflow graph to find in a model. See the module docstring."""

    def __init__(self, name: str):
        self.name = name
        self._inputs: list[str] = []
        self._constants: dict[str, _Constant] = {}
        self._nodes: list[_PatternNode] = []
        self._outputs: list[Ref] = []

    def __repr__(self):
        return f"Pattern({self.name!r})"

    # -- declaring -------------------------------------------------------------------
    def input(self, name: str) -> Ref:
        """A tensor the subgraph reads from outside. Declare the main input
        first: matching starts at its first consumer."""
        self._check_new_name(name)
        self._inputs.append(name)
        return Ref(name, "input")

    def constant(self, name: str, value: Any = None, *, optional: bool = False) -> Ref:
        """A constant input. With ``value``, only an initializer or ``Constant``
        node output holding that one value matches."""
        self._check_new_name(name)
        self._constants[name] = _Constant(value, optional)
        return Ref(name, "constant")

    def op(self, op: str, *inputs: Ref, name: str | None = None,
           check: Callable[[gs.Node], bool] | None = None) -> Ref:
        """A node of type ``op``; ``check(node)`` may reject it on its attributes."""
        name = name or f"{op}_{len(self._nodes)}"
        self._check_new_name(name)
        for ref in inputs:
            if not isinstance(ref, Ref):
                raise TypeError(f"pattern {self.name}: input of {name} is {ref!r}, not a pattern tensor")
        optional = [i for i, r in enumerate(inputs) if r.kind == "constant" and self._constants[r.name].optional]
        if optional and optional != [len(inputs) - 1]:
            raise ValueError(f"pattern {self.name}: only the last input of {name} may be optional")
        out = Ref(name, "node")
        self._nodes.append(_PatternNode(name, op, tuple(inputs), check, out))
        return out

    def output(self, *refs: Ref) -> "Pattern":
        """The tensors the rest of the graph may read (in the order a rewrite
        returns them). Every other tensor of the subgraph must be private to it."""
        self._outputs = list(refs)
        return self

    def _check_new_name(self, name):
        taken = set(self._inputs) | set(self._constants) | {n.name for n in self._nodes}
        if name in taken:
            raise ValueError(f"pattern {self.name}: name {name!r} is used twice")

    @property
    def size(self) -> int:
        """How many nodes the pattern has."""
        return len(self._nodes)

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(n.op for n in self._nodes)

    # -- matching --------------------------------------------------------------------
    @functools.cached_property
    def _variants(self) -> list[tuple[gs.GraphPattern, list[str], list[str]]]:
        """One GraphPattern per operand order / optional input choice:
        (pattern, its input tensor names in order, the op of each input's first consumer)."""
        if not self._outputs:
            raise ValueError(f"pattern {self.name} declares no output")
        per_node = [self._input_choices(node) for node in self._nodes]
        variants, seen = [], set()
        for choice in itertools.product(*per_node):
            key = tuple(tuple(r.name for r in inputs) for inputs in choice)
            if key not in seen:
                seen.add(key)
                variants.append(self._graph_pattern(choice))
        return variants

    def _input_choices(self, node: _PatternNode) -> list[tuple[Ref, ...]]:
        forms = [node.inputs]
        last = node.inputs[-1] if node.inputs else None
        if last is not None and last.kind == "constant" and self._constants[last.name].optional:
            forms.append(node.inputs[:-1])
        if node.op in COMMUTATIVE_OPS:
            forms += [f[::-1] for f in forms if len(f) == 2 and f[0] != f[1]]
        return forms

    def _graph_pattern(self, choice):
        used = [r.name for inputs in choice for r in inputs if r.kind != "node"]
        order = [n for n in (*self._inputs, *self._constants) if n in used]
        gp = gs.GraphPattern()
        tensors = {name: gp.variable() for name in order}
        for node, inputs in zip(self._nodes, choice):
            tensors[node.name] = gp.add(node.name, node.op, check_func=node.check,
                                        inputs=[tensors[r.name] for r in inputs])
        gp.set_output_tensors([tensors[r.name] for r in self._outputs])
        first_ops = [next(node.op for node, inputs in zip(self._nodes, choice)
                          if any(r.name == name for r in inputs)) for name in order]
        return gp, order, first_ops

    def find(self, graph: gs.Graph) -> list["Match"]:
        """Every place ``graph`` holds this pattern (places may overlap)."""
        present = {node.op for node in graph.nodes}
        if not self.ops <= present:
            return []
        graph_outputs = {t.name for t in graph.outputs}
        matches, seen = [], set()
        # GraphPattern logs every node it tries at INFO, gs's default level.
        with graph.node_ids(), G_LOGGER.suppress(G_LOGGER.WARNING):
            for gp, input_names, first_ops in self._variants:
                # GraphPattern.match_all starts at the first consumer of input 0,
                # trying every node. Trying only nodes of the right op is much
                # faster; starting from each input in turn also finds subgraphs
                # with an internal fan-out (X -> Cast -> {Pow, Mul}) that
                # GraphPattern misses from some starting points.
                for index, first_op in enumerate(first_ops):
                    for node in graph.nodes:
                        if node.op != first_op:
                            continue
                        mapping = gp.match(node, from_inbound=True, from_tensor_index=index,
                                           mapped_onnx_nodes=set(), onnx_graph_output_tensors=graph_outputs)
                        match = mapping and self._to_match(mapping, input_names)
                        if match and match.key not in seen:
                            seen.add(match.key)
                            matches.append(match)
        return matches

    def _to_match(self, mapping: gs.PatternMapping, input_names: list[str]) -> "Match | None":
        tensors = dict(zip(input_names, mapping.inputs))
        for name, const in self._constants.items():
            if name not in tensors or const.value is None:
                continue  # a free constant: the rewrite reads it and may refuse a computed one
            value = constant_value(tensors[name])
            if value is None or not (value.size == 1 and np.allclose(value.astype(np.float64), const.value)):
                return None
        nodes = {node.name: mapping.get(node.name) for node in self._nodes}
        return Match(self, nodes, tensors, list(mapping.outputs))


@dataclasses.dataclass
class Match:
    """Where a pattern sits in a graph."""

    pattern: Pattern
    nodes: dict[str, gs.Node]      # pattern node name -> graph node
    tensors: dict[str, gs.Tensor]  # pattern input / constant name -> graph tensor
    outputs: list[gs.Variable]

    def node(self, name: str) -> gs.Node | None:
        return self.nodes.get(name)

    def input(self, name: str) -> gs.Tensor | None:
        """The graph tensor bound to pattern input (or constant) ``name``."""
        return self.tensors.get(name)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of pattern constant ``name``; None if this variant has no
        such input or the tensor is not a constant."""
        tensor = self.tensors.get(name)
        return None if tensor is None else constant_value(tensor)

    @property
    def key(self) -> frozenset[int]:
        """Identifies the matched nodes (two variants may find the same subgraph)."""
        return frozenset(id(n) for n in self.nodes.values())

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes.values()]


class NotReplaceable(Exception):
    """The subgraph has the pattern's shape but the plugin cannot compute it."""


@dataclasses.dataclass
class Replacement:
    """The plugin node's inputs (graph tensors, or arrays that become
    initializers) and attributes, in schema order."""

    inputs: Sequence[gs.Tensor | np.ndarray]
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Rewrite:
    """A pattern and how a match of it becomes the plugin node."""

    pattern: Pattern
    build: Callable[[Match], Replacement]


def constant_value(tensor: gs.Tensor) -> np.ndarray | None:
    """The value of an initializer or of a ``Constant`` node's output, else None."""
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    producer = tensor.inputs[0] if len(tensor.inputs) == 1 else None
    if producer is None or producer.op != "Constant":
        return None
    for key, value in producer.attrs.items():
        if key == "value":
            return np.asarray(value.values)
        if key in ("value_float", "value_floats"):
            return np.asarray(value, dtype=np.float32)
        if key in ("value_int", "value_ints"):
            return np.asarray(value, dtype=np.int64)
    return None
