"""Check, before TensorRT sees a model, that every plugin node will find its creator.

TensorRT's ONNX parser imports a node whose op type it does not know through
its fallback plugin importer: it asks the plugin registry for a creator named
like the node's ``op_type``, with the version in the node attribute
``plugin_version`` (default ``"1"``) and the namespace in ``plugin_namespace``
(when that is absent or empty: the node's domain from TensorRT 10.10 on,
``""`` before), and passes
the other attributes as plugin fields. When that lookup fails, the parser
stops with "Plugin not found, are the plugin name, version, and namespace
correct?" after the engine build has already started. This module does the
same lookup up front, against the creators that the given plugin libraries
export (read by :mod:`plugkit.host`, so no TensorRT is needed), and says for
each node that would fail which creators exist and which one comes closest.

It also flags a plugin whose name is a built-in ONNX op: the parser imports
such a node as the built-in op and never asks the registry.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import DoctorError, HostUnavailableError, PlugkitError  # noqa: F401 (re-exported)
from .plugin_libraries import check_library_paths, open_libraries  # noqa: F401

# Domains whose ops the ONNX parser imports itself (never through plugins).
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training")
# Node attributes the fallback importer reads itself; the rest become plugin fields.
PLUGIN_META_ATTRS = ("plugin_version", "plugin_namespace")
DEFAULT_PLUGIN_VERSION = "1"
# TensorRT's own plugin library (libnvinfer_plugin, loaded by the builder) names
# its plugins like this; they are not in the user's libraries and are not checked.
TENSORRT_PLUGIN_SUFFIX = "_TRT"


@functools.lru_cache(maxsize=None)
def standard_ops() -> frozenset[tuple[str, str]]:
    """(domain, op_type) of every op in onnx's schemas, all opset versions;
    the default domain is written ``""``."""
    import onnx.defs

    ops = set()
    for schema in onnx.defs.get_all_schemas_with_history():
        domain = "" if schema.domain in ("", "ai.onnx") else schema.domain
        ops.add((domain, schema.name))
    return frozenset(ops)


def standard_op_names() -> frozenset[str]:
    return frozenset(name for domain, name in standard_ops() if domain == "")


def is_standard(op_type: str, domain: str) -> bool:
    domain = "" if domain in ("", "ai.onnx") else domain
    return (domain, op_type) in standard_ops()


@dataclasses.dataclass(frozen=True)
class PluginNode:
    """A node the parser will hand to the plugin registry."""

    name: str
    op_type: str
    domain: str
    version: str
    namespace: str
    namespace_from: str  # "attribute", "domain" or "default"
    attributes: tuple[tuple[str, str], ...]  # (name, onnx attribute type) of the plugin fields
    graph: str = "main graph"

    def describe(self) -> str:
        where = "" if self.graph == "main graph" else f" in {self.graph}"
        return (f"node {self.name or '<unnamed>'!r}{where}: op {self.op_type} "
                f"version {self.version!r} namespace {self.namespace!r}")


@dataclasses.dataclass(frozen=True)
class Creator:
    """One creator a library exports, as far as the doctor cares."""

    name: str
    version: str
    namespace: str
    fields: tuple[tuple[str, str], ...]
    library: str

    def describe(self) -> str:
        return f"{self.name} version {self.version!r} namespace {self.namespace!r}"


@dataclasses.dataclass(frozen=True)
class LoadedLibrary:
    path: str
    tensorrt_version: str | None
    creators: tuple[Creator, ...]


@dataclasses.dataclass
class NodeFinding:
    node: PluginNode
    creator: Creator | None = None
    closest: list[tuple[Creator, str]] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    provided_by_tensorrt: bool = False

    @property
    def ok(self) -> bool:
        return self.creator is not None or self.provided_by_tensorrt


@dataclasses.dataclass
class DoctorReport:
    model: str
    libraries: list[LoadedLibrary]
    findings: list[NodeFinding]
    warnings: list[str]

    @property
    def missing(self) -> list[NodeFinding]:
        return [f for f in self.findings if not f.ok]

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def creators(self) -> list[Creator]:
        return [c for lib in self.libraries for c in lib.creators]

    def format(self) -> str:
        lines = [f"model: {self.model}"]
        if self.libraries:
            lines.append("plugin libraries loaded:")
            for lib in self.libraries:
                version = f" (TensorRT headers {lib.tensorrt_version})" if lib.tensorrt_version else ""
                lines.append(f"  {lib.path}{version}")
        else:
            lines.append("plugin libraries loaded: none (pass --plugins LIB)")
        lines.append("registered plugins: " + (
            ", ".join(c.describe() for c in self.creators) if self.creators else "none"))
        lines.append(f"plugin nodes: {len(self.findings)}")
        for finding in self.findings:
            node = finding.node
            if finding.creator is not None:
                lines.append(f"  ok       {node.describe()} -> {finding.creator.library}")
            elif finding.provided_by_tensorrt:
                lines.append(f"  skipped  {node.describe()} (TensorRT's own plugin library; "
                             f"not checked)")
            else:
                lines.append(f"  MISSING  {node.describe()}: no loaded library registers it")
                for creator, why in finding.closest:
                    lines.append(f"           closest: {creator.describe()} in {creator.library} "
                                 f"({why})")
                if not finding.closest:
                    lines.append("           closest: nothing similar is registered")
            for note in finding.notes:
                lines.append(f"           note: {note}")
        for warning in self.warnings:
            lines.append(f"warning: {warning}")
        lines.append("result: " + ("ok, every plugin node has a creator" if self.ok else
                                   f"{len(self.missing)} plugin node(s) would fail to parse"))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ok": self.ok,
            "libraries": [{"path": lib.path, "tensorrt_version": lib.tensorrt_version,
                           "creators": [dataclasses.asdict(c) for c in lib.creators]}
                          for lib in self.libraries],
            "nodes": [{"node": dataclasses.asdict(f.node),
                       "ok": f.ok,
                       "library": f.creator.library if f.creator else None,
                       "provided_by_tensorrt": f.provided_by_tensorrt,
                       "closest": [{"creator": dataclasses.asdict(c), "why": why}
                                   for c, why in f.closest],
                       "notes": f.notes}
                      for f in self.findings],
            "warnings": self.warnings,
        }


# --- reading the model -------------------------------------------------------

def _attr_value(attr) -> Any:
    import onnx.helper

    value = onnx.helper.get_attribute_value(attr)
    return value.decode() if isinstance(value, bytes) else value


def _attr_type_name(attr) -> str:
    import onnx

    return onnx.AttributeProto.AttributeType.Name(attr.type)


def _iter_nodes(graph, label: str, functions: dict):
    """Nodes of a graph and its subgraphs; nodes that call a model-local function
    are replaced by the function's body (the parser inlines them)."""
    import onnx

    for node in graph.node:
        key = (node.domain, node.op_type)
        if key in functions:
            yield from _iter_nodes(functions[key], f"function {node.op_type}", functions)
            continue
        yield node, label
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _iter_nodes(attr.g, f"subgraph {attr.name} of {node.name or node.op_type}",
                                       functions)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _iter_nodes(sub, f"subgraph {attr.name} of {node.name or node.op_type}",
                                           functions)


class _FunctionBody:
    def __init__(self, function):
        self.node = function.node


def plugin_nodes(model) -> tuple[list[PluginNode], list[str]]:
    """The nodes the parser would import as plugins, and warnings about nodes
    that look like plugins but name a built-in op."""
    functions = {(f.domain, f.name): _FunctionBody(f) for f in model.functions}
    nodes: list[PluginNode] = []
    warnings: list[str] = []
    for node, label in _iter_nodes(model.graph, "main graph", functions):
        attrs = {a.name: a for a in node.attribute}
        if is_standard(node.op_type, node.domain):
            if any(name in attrs for name in PLUGIN_META_ATTRS):
                warnings.append(
                    f"node {node.name or '<unnamed>'!r} ({node.op_type}) carries plugin attributes "
                    f"but {node.op_type} is a built-in ONNX op: TensorRT imports it as the built-in "
                    f"op and never looks for a plugin. Give the plugin a name that is not an ONNX op.")
            continue
        version = str(_attr_value(attrs["plugin_version"])) if "plugin_version" in attrs \
            else DEFAULT_PLUGIN_VERSION
        if "plugin_namespace" in attrs and str(_attr_value(attrs["plugin_namespace"])):
            namespace, namespace_from = str(_attr_value(attrs["plugin_namespace"])), "attribute"
        elif node.domain not in STANDARD_DOMAINS:
            namespace, namespace_from = node.domain, "domain"
        else:
            namespace, namespace_from = "", "default"
        fields = tuple((a.name, _attr_type_name(a)) for a in node.attribute
                       if a.name not in PLUGIN_META_ATTRS)
        nodes.append(PluginNode(node.name, node.op_type, node.domain, version, namespace,
                                namespace_from, fields, label))
    return nodes, warnings


# --- the libraries -----------------------------------------------------------

def describe_library(library) -> LoadedLibrary:
    """A :class:`plugkit.host.PluginLibrary` (or anything with ``path``,
    ``tensorrt_version`` and ``creators``) as the doctor sees it."""
    path = str(library.path)
    creators = tuple(
        Creator(c.name, str(c.version), c.namespace,
                tuple((f.name, f.type) for f in getattr(c, "fields", ()) or ()), path)
        for c in library.creators)
    return LoadedLibrary(path, getattr(library, "tensorrt_version", None), creators)


def load_libraries(paths: Iterable[str | os.PathLike]) -> list[LoadedLibrary]:
    """Open each plugin library through the host and read its creators."""
    return [describe_library(library) for library in open_libraries(paths)]


# --- matching ----------------------------------------------------------------

def _closest(node: PluginNode, creators: Sequence[Creator]) -> list[tuple[Creator, str]]:
    """The creators that come closest to the node, with what differs."""
    found: list[tuple[Creator, str]] = []
    seen = set()

    def add(creator: Creator, why: str):
        key = (creator.name, creator.version, creator.namespace, creator.library)
        if key not in seen:
            seen.add(key)
            found.append((creator, why))

    for creator in creators:
        if creator.name != node.op_type:
            continue
        diffs = []
        fixes = []
        if creator.version != node.version:
            diffs.append(f"version {creator.version!r}, node asks {node.version!r}")
            fixes.append(f"plugin_version={creator.version!r}")
        if creator.namespace != node.namespace:
            diffs.append(f"namespace {creator.namespace!r}, node asks {node.namespace!r}")
            fixes.append(f"plugin_namespace={creator.namespace!r}")
        add(creator, "same name; " + "; ".join(diffs) +
            (f"; set the node attribute(s) {', '.join(fixes)}" if fixes else ""))
    by_lower = {c.name.lower(): c for c in creators}
    if node.op_type.lower() in by_lower and by_lower[node.op_type.lower()].name != node.op_type:
        creator = by_lower[node.op_type.lower()]
        add(creator, f"name differs only in case: {creator.name} vs {node.op_type}")
    names = sorted({c.name for c in creators})
    for name in difflib.get_close_matches(node.op_type, names, n=3, cutoff=0.6):
        for creator in creators:
            if creator.name == name:
                add(creator, f"similar name: {creator.name} vs {node.op_type}")
    return found


def _field_notes(node: PluginNode, creator: Creator) -> list[str]:
    if not creator.fields:
        return []
    field_types = dict(creator.fields)
    notes = []
    for attr_name, attr_type in node.attributes:
        if attr_name not in field_types:
            notes.append(f"attribute {attr_name!r} is not a field of {creator.name} "
                         f"(its fields: {', '.join(field_types) or 'none'})")
        elif (attr_type in ("STRING", "STRINGS")) != (field_types[attr_name] == "CHAR"):
            notes.append(f"attribute {attr_name!r} is an ONNX {attr_type}, but the plugin field "
                         f"is {field_types[attr_name]}")
    return notes


def check_model(model, libraries: Sequence, model_name: str = "<model>") -> DoctorReport:
    """Compare the plugin nodes of ``model`` (an ``onnx.ModelProto``) with the
    creators of ``libraries`` (:class:`LoadedLibrary` or host PluginLibrary)."""
    libraries = [lib if isinstance(lib, LoadedLibrary) else describe_library(lib)
                 for lib in libraries]
    creators = [c for lib in libraries for c in lib.creators]
    index = {(c.name, c.version, c.namespace): c for c in creators}
    nodes, warnings = plugin_nodes(model)
    findings = []
    for node in nodes:
        finding = NodeFinding(node)
        creator = index.get((node.op_type, node.version, node.namespace))
        if creator is not None:
            finding.creator = creator
            finding.notes.extend(_field_notes(node, creator))
            if node.namespace_from == "domain" and node.namespace:
                finding.notes.append(
                    f"the namespace comes from the node's domain {node.domain!r}, which the "
                    f"parser reads only from TensorRT 10.10 on; add the attribute "
                    f"plugin_namespace={node.namespace!r} for older versions")
        elif node.op_type.endswith(TENSORRT_PLUGIN_SUFFIX):
            finding.provided_by_tensorrt = True
        else:
            finding.closest = _closest(node, creators)
        findings.append(finding)
    builtin = standard_op_names()
    for creator in creators:
        if creator.name in builtin:
            warnings.append(
                f"plugin {creator.describe()} in {creator.library} shadows the built-in ONNX op "
                f"{creator.name}: TensorRT's parser imports {creator.name} nodes as the built-in op "
                f"and never uses this plugin; rename the plugin (e.g. {creator.name}Plugin)")
    return DoctorReport(model_name, libraries, findings, warnings)


def check(model_path: str | os.PathLike, plugin_paths: Iterable[str | os.PathLike] = (),
          libraries: Sequence | None = None) -> DoctorReport:
    """Read ``model_path`` (no external weights needed) and check its plugin
    nodes against the libraries at ``plugin_paths`` (or already-loaded ``libraries``)."""
    import onnx

    model_path = Path(model_path)
    if not model_path.is_file():
        raise PlugkitError(f"ONNX model {model_path} does not exist")
    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors have many types
        raise PlugkitError(f"{model_path} is not a readable ONNX model: {exc}") from None
    if libraries is None:
        libraries = load_libraries(plugin_paths)
    return check_model(model, libraries, str(model_path))
