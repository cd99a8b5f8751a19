"""Replacing subgraphs with plugin nodes (``plugkit insert``).

For each op, the rewrites in ``plugins/<op>/patterns.py`` (or ``op.py``) are
tried in order, most specific first; a subgraph that a rewrite has taken is not
offered to later ones. Everything is decided before the graph changes, each
replacement swaps a whole subgraph for one node, and the result must pass
``onnx.checker``: the caller gets a complete new model or an exception, never
a half-rewritten graph. The input model is not modified.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from ..errors import OnnxModelError, OpsetConflictError, SchemaError
from ..ops import op_module, sibling_module
from ..schema import OpSchema
from .model_io import load_model, same_file, save_model
from .patterns import Match, NotReplaceable, Pattern, Replacement, Rewrite
from .plugin_node import DOMAIN, DOMAIN_VERSION, MIN_OPSET, model_opset, node_attrs


@dataclasses.dataclass(frozen=True)
class OpRewrites:
    """What ``insert`` knows about one op: its schema, its rewrites, and the
    anchors (patterns that mark where the op's subgraph starts; an anchor
    left in place after rewriting is reported as a partial match)."""

    schema: OpSchema
    rewrites: tuple[Rewrite, ...]
    anchors: tuple[Pattern, ...] = ()


def load_rewrites(op_name: str, root=None) -> OpRewrites:
    """The rewrites declared for ``op_name`` in its ``op.py`` or ``patterns.py``."""
    module = op_module(op_name, root)
    source = module if hasattr(module, "rewrites") else sibling_module(op_name, "patterns.py", root)
    if source is None or not getattr(source, "rewrites", None):
        raise SchemaError(f"op {op_name} declares no ONNX patterns; add `rewrites = [...]` to "
                          f"{os.path.dirname(module.__file__)}/patterns.py (see docs/onnx.md)")
    return OpRewrites(module.schema, tuple(source.rewrites), tuple(getattr(source, "anchors", ())))


@dataclasses.dataclass(frozen=True)
class Replaced:
    op: str
    node: str                  # the plugin node's name
    pattern: str
    replaced: tuple[str, ...]  # names of the nodes it replaced


@dataclasses.dataclass(frozen=True)
class Skipped:
    op: str
    pattern: str
    nodes: tuple[str, ...]
    reason: str


@dataclasses.dataclass
class InsertResult:
    model: onnx.ModelProto
    replaced: list[Replaced]
    skipped: list[Skipped]

    def count(self, op: str | None = None) -> int:
        return sum(1 for r in self.replaced if op is None or r.op == op)

    def summary(self) -> str:
        lines = [f"replaced {self.count()} subgraph(s) with plugin nodes"]
        for r in self.replaced:
            lines.append(f"  {r.node} ({r.op}, pattern {r.pattern}) <- {', '.join(r.replaced)}")
        if self.skipped:
            lines.append(f"left {len(self.skipped)} partial match(es) unchanged:")
            for s in self.skipped:
                lines.append(f"  {s.op} at {', '.join(s.nodes)}: {s.reason}")
        return "\n".join(lines)


def check_opsets(model: onnx.ModelProto) -> None:
    """OpsetConflictError unless ``model`` can take plugkit nodes."""
    opset = model_opset(model)
    if opset is None:
        raise OpsetConflictError("the model imports no ai.onnx opset; re-export it from its framework")
    if opset < MIN_OPSET:
        raise OpsetConflictError(
            f"the model uses ai.onnx opset {opset}; TensorRT and plugkit need >= {MIN_OPSET} "
            f"(re-export with torch.onnx.export(..., opset_version=17) or convert it with "
            f"onnx.version_converter)")
    ours = model_opset(model, DOMAIN)
    if ours is not None and ours != DOMAIN_VERSION:
        raise OpsetConflictError(
            f"the model already imports domain {DOMAIN!r} at version {ours}; plugkit writes "
            f"version {DOMAIN_VERSION} nodes into it and cannot mix the two")


def insert_plugins(model: onnx.ModelProto, ops: Sequence[str | OpRewrites]) -> InsertResult:
    """A copy of ``model`` with every match of each op's patterns replaced by a plugin node."""
    check_opsets(model)
    op_rewrites = [op if isinstance(op, OpRewrites) else load_rewrites(op) for op in ops]
    try:
        # Shapes and dtypes let rewrites check axes and dtypes; keep going without them.
        work = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        work = model
    graph = gs.import_onnx(work)
    replaced: list[Replaced] = []
    skipped: list[Skipped] = []
    for op in op_rewrites:
        _rewrite_op(graph, op, replaced, skipped)
        graph.cleanup()
    if not replaced:
        return InsertResult(model, [], skipped)
    graph.toposort()
    return InsertResult(_export(graph, model), replaced, skipped)


def _rewrite_op(graph: gs.Graph, op: OpRewrites, replaced: list, skipped: list) -> None:
    taken: set[int] = set()
    accepted: list[tuple[Rewrite, Match, Replacement]] = []
    refused: list[tuple[Rewrite, Match, str]] = []
    for rewrite in op.rewrites:
        for match in rewrite.pattern.find(graph):
            ids = {id(n) for n in match.nodes.values()}
            if ids & taken:
                continue
            try:
                replacement = rewrite.build(match)
            except NotReplaceable as exc:
                refused.append((rewrite, match, str(exc)))
                continue
            taken |= ids
            accepted.append((rewrite, match, replacement))

    reported: set[int] = set(taken)
    for rewrite, match, reason in refused:
        ids = {id(n) for n in match.nodes.values()}
        if not ids & reported:
            reported |= ids
            skipped.append(Skipped(op.schema.name, rewrite.pattern.name, tuple(match.node_names), reason))
    for anchor in op.anchors:
        for match in anchor.find(graph):
            ids = {id(n) for n in match.nodes.values()}
            if not ids & reported:
                reported |= ids
                skipped.append(Skipped(
                    op.schema.name, anchor.name, tuple(match.node_names),
                    f"looks like the start of {op.schema.name}, but no pattern matches the whole "
                    f"subgraph (is an intermediate result also used elsewhere, or a graph output?)"))

    node_names = {n.name for n in graph.nodes}
    tensor_names = set(graph.tensors())
    for rewrite, match, replacement in accepted:
        name = _unique(f"{op.schema.name}_{sum(r.op == op.schema.name for r in replaced)}", node_names)
        replaced.append(_replace(graph, op.schema, rewrite, match, replacement, name, tensor_names))


def _replace(graph, schema: OpSchema, rewrite: Rewrite, match: Match,
             replacement: Replacement, name: str, tensor_names: set[str]) -> Replaced:
    if len(replacement.inputs) != len(schema.inputs):
        raise SchemaError(f"pattern {rewrite.pattern.name} gives {len(replacement.inputs)} inputs; "
                          f"{schema.name} takes {len(schema.inputs)}")
    inputs = [t if isinstance(t, gs.Tensor) else
              gs.Constant(_unique(f"{name}_{spec.name}", tensor_names), np.ascontiguousarray(t))
              for t, spec in zip(replacement.inputs, schema.inputs)]
    outputs = list(match.outputs)
    for node in match.nodes.values():
        node.outputs.clear()  # detached: graph.cleanup() drops it
    graph.nodes.append(gs.Node(op=schema.name, name=name, domain=DOMAIN,
                               attrs=node_attrs(schema, replacement.attrs),
                               inputs=inputs, outputs=outputs))
    return Replaced(schema.name, name, rewrite.pattern.name, tuple(match.node_names))


def _unique(base: str, taken: set[str]) -> str:
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _export(graph: gs.Graph, original: onnx.ModelProto) -> onnx.ModelProto:
    model = gs.export_onnx(graph)
    # gs writes the newest IR version onnx knows; keep the one the model had so
    # that older runtimes (and TensorRT's parser) still read it.
    model.ir_version = original.ir_version
    model.producer_name, model.producer_version = original.producer_name, original.producer_version
    model.model_version, model.doc_string, model.domain = original.model_version, original.doc_string, original.domain
    del model.metadata_props[:]
    model.metadata_props.extend(original.metadata_props)
    if model_opset(model, DOMAIN) is None:
        model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise OnnxModelError(f"the rewritten model fails onnx.checker, so nothing was written: "
                             f"{str(exc).splitlines()[0]}") from None
    return model


def insert_file(src, dst, ops: Sequence[str], *, allow_none: bool = False,
                force: bool = False) -> InsertResult:
    """``plugkit insert``: read ``src``, rewrite, write ``dst`` (never ``src``).
    Writes nothing when no subgraph matched, unless ``allow_none``."""
    if same_file(src, dst):
        raise OnnxModelError(f"output {dst} is the input file; write the result elsewhere "
                             f"(plugkit never modifies its input)")
    for op in ops:  # unknown ops fail before the (possibly slow) load
        op_module(op)
    result = insert_plugins(load_model(src), ops)
    if result.count() or allow_none:
        save_model(result.model, dst, force=force, protect=src)
    return result
