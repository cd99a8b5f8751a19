"""The CUDA kernels of plugkit's torch ops: the plugin itself, from a plugin
library, run through the host on the caller's tensors.

``torch.ops.plugkit.<op>`` on CUDA tensors runs the plugin's ``enqueue`` on the
current torch stream, with outputs (and workspace) allocated by torch's caching
allocator on that stream: no copies, no host synchronisation, nothing allocated
outside torch, so a call can be captured in a CUDA graph. Which library: the
``library=`` given to :func:`plugkit.torch_ops.torch_op`, else
``$PLUGKIT_PLUGIN_LIBRARY``.

A call costs little CPU time above the plugin's own enqueue because everything
that depends only on (attributes, input shapes, dtypes, device) is done once per
such key: the plugin is taken through TensorRT's build and runtime phases
(:class:`plugkit.host.PreparedPlugin`) and its tensor descriptors are bound in
C++ (``_host.bind_enqueue``); a call then passes only integer addresses and
the stream handle. Each key has its own plugin object, as each layer of an
engine has its own.

Ops with a data-dependent output (a size tensor) read that size after the
launch to cut the outputs to it, which waits for the stream, as
``torch.nonzero`` does; such calls cannot be captured in a CUDA graph.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

from .errors import PluginError, PluginLibraryError
from .schema import OpSchema
from .tensors import dtype_name

LIBRARY_ENV = "PLUGKIT_PLUGIN_LIBRARY"

_libraries: dict[str, Any] = {}  # resolved path -> PluginLibrary, each opened once per process
_libraries_lock = threading.Lock()


def plugin_library_path(op: str, library: str | os.PathLike | None = None) -> Path:
    """The plugin library that runs ``op`` on CUDA tensors: ``library`` if given, else
    ``$PLUGKIT_PLUGIN_LIBRARY``; a clear error when neither names one, or the file is missing."""
    path = library if library is not None else os.environ.get(LIBRARY_ENV) or None
    if path is None:
        raise PluginLibraryError(
            f"torch.ops.plugkit.{op} got CUDA tensors, which run the plugin's own kernel from a plugin "
            f"library, and no library is named: pass torch_op(..., library='build/libplugkit_plugins.so') "
            f"or set {LIBRARY_ENV}=build/libplugkit_plugins.so (CPU tensors run the op's reference)")
    path = Path(path)
    if not path.is_file():
        raise PluginLibraryError(
            f"plugin library {path} (for torch.ops.plugkit.{op}) does not exist"
            f"{'' if path.exists() else '; build it with `python -m plugkit build`'}")
    return path


def _open(path: Path):
    from .host import PluginLibrary

    key = str(path.resolve())
    with _libraries_lock:
        if key not in _libraries:
            _libraries[key] = PluginLibrary(key)
        return _libraries[key]


def _torch_hooks():
    """torch's own fast accessors where it has them (CUDA builds): the current device and the raw
    cudaStream_t of a device's current stream, as ints, without making Python objects."""
    import torch

    get_device = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device
    raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
        lambda index: torch.cuda.current_stream(index).cuda_stream)
    return get_device, raw_stream


class OpKernel:
    """The CUDA kernel of one op: ``kernel(*tensors, *attrs)`` with the op's schema order."""

    def __init__(self, schema: OpSchema, op_name: str, library: str | os.PathLike | None = None):
        self.schema = schema
        self.op_name = op_name  # torch.ops.plugkit.<op_name>, for messages
        self._n_inputs = len(schema.inputs)
        self._attr_names = [a.name for a in schema.attrs]
        self._has_array_attrs = any(a.is_array for a in schema.attrs)
        # The dispatcher leaves out trailing arguments equal to their defaults: put them back, so that
        # one call has one key however it was spelled.
        self._full_defaults = (None,) * self._n_inputs + tuple(a.default for a in schema.attrs)
        self._library_arg = library
        self._creator = None
        self._launches: dict[tuple, Callable] = {}
        self._lock = threading.Lock()

    @property
    def library(self) -> str | os.PathLike | None:
        """The library given to torch_op, if any (else $PLUGKIT_PLUGIN_LIBRARY is read at the first call)."""
        return self._library_arg

    def set_library(self, library: str | os.PathLike | None) -> None:
        """Run the plugin from ``library`` from now on (prepared plugins of another library are dropped)."""
        with self._lock:
            if library != self._library_arg:
                self._library_arg, self._creator, self._launches = library, None, {}

    def creator(self):
        if self._creator is None:
            path = plugin_library_path(self.op_name, self._library_arg)
            s = self.schema
            self._creator = _open(path).creator(s.name, s.version, s.namespace)
        return self._creator

    def key(self, args) -> tuple:
        """What a prepared plugin depends on: attributes, and each input's shape, dtype and device."""
        if len(args) < len(self._full_defaults):
            args = args + self._full_defaults[len(args):]
        attrs = args[self._n_inputs:]
        if self._has_array_attrs:
            attrs = tuple(tuple(a) if isinstance(a, list) else a for a in attrs)
        return (attrs, *[None if t is None else (t.shape, t.dtype, t.get_device()) for t in args[:self._n_inputs]])

    def __call__(self, *args):
        if len(args) < len(self._full_defaults):
            args = args + self._full_defaults[len(args):]
        key = self.key(args)
        launch = self._launches.get(key)
        if launch is None:
            with self._lock:
                launch = self._launches.get(key) or self._prepare(key, args)
        return launch(args[:self._n_inputs])

    def _prepare(self, key, args) -> Callable:
        import torch

        from .host import PreparedPlugin, _native

        tensors = args[:self._n_inputs]
        present = [t for t in tensors if t is not None]
        n_present = len(present)
        if any(t is None for t in tensors[:n_present]):
            missing = [s.name for s, t in zip(self.schema.inputs, tensors) if t is None]
            raise PluginError(f"torch.ops.plugkit.{self.op_name}: input(s) {missing} left out before a given one; "
                              "only the last inputs may be left out (as in ONNX)")
        devices = {str(t.device) for t in present}
        if len(devices) != 1 or not present[0].is_cuda:
            raise PluginError(f"torch.ops.plugkit.{self.op_name}: the plugin runs on one CUDA device; the inputs "
                              f"are on {sorted(devices)}")
        device = present[0].device
        attrs = self.schema.resolve_attrs(dict(zip(self._attr_names, args[self._n_inputs:])))
        specs = [(dtype_name(t.dtype), list(t.shape)) for t in present]
        get_device, raw_stream = _torch_hooks()
        with torch.cuda.device(device):
            prepared = PreparedPlugin(self.creator(), attrs, specs, layer_name=f"torch.ops.plugkit.{self.op_name}")
        bound = _native().bind_enqueue(
            prepared.plugin._native, [(d, "LINEAR", s, 0) for d, s in specs],
            [(d, "LINEAR", dims, 0) for d, dims in zip(prepared.output_dtypes, prepared.output_dims)])
        shapes = [tuple(s) for s in prepared.output_shapes]
        dtypes = [getattr(torch, d) for d in prepared.output_dtypes]
        workspace_bytes = prepared.workspace_bytes
        index = device.index
        empty, uint8 = torch.empty, torch.uint8
        trim = prepared.trim if prepared.size_outputs else None
        single = len(shapes) == 1

        def launch(tensors):
            # The launch goes to the current device: switch to the tensors' one when it is not.
            if get_device() != index:
                with torch.cuda.device(index):
                    return launch(tensors)
            inputs = [t if t.is_contiguous() else t.contiguous() for t in tensors[:n_present]]
            outputs = [empty(s, dtype=d, device=device) for s, d in zip(shapes, dtypes)]
            # Allocated on the current stream and used only there: the caching allocator may hand it on
            # as soon as this call returns, and the plugin's kernels still run before the next user.
            workspace = empty(workspace_bytes, dtype=uint8, device=device) if workspace_bytes else None
            bound(*[t.data_ptr() for t in inputs], *[o.data_ptr() for o in outputs],
                  0 if workspace is None else workspace.data_ptr(), raw_stream(index))
            if trim is not None:
                outputs = trim(outputs)
            return outputs[0] if single else tuple(outputs)

        launch.prepared = prepared  # for tests and the overhead benchmark
        self._launches[key] = launch
        return launch

    def prepared(self, *args):
        """The PreparedPlugin a call with these arguments runs (prepared now if it is new)."""
        if len(args) < len(self._full_defaults):
            args = args + self._full_defaults[len(args):]
        key = self.key(args)
        launch = self._launches.get(key) or self._prepare(key, args)
        return launch.prepared


def register(op, kernel: Callable, backend: str = "CUDA") -> None:
    """Make ``kernel`` the implementation of the custom op ``op`` (a CustomOpDef) for tensors of
    ``backend`` (a dispatch key; CUDA for plugkit's ops, CPU in the tests of this dispatch).

    Registered at the dispatcher's CUDA key directly, and at AutogradCUDA with a fast path:
    custom_op's own Python wrappers (autograd, aliasing checks) cost several times the launch
    itself. A call whose tensors are plain CUDA tensors needing no gradient goes straight to the
    kernel; anything else (FakeTensors and functional tensors while torch.compile or export trace,
    dispatch modes such as opcheck's, inputs that require grad) takes custom_op's autograd path,
    which reaches the same kernel through the CUDA key."""
    import torch

    name = op._qualname.split("::")[1]
    library = torch.library.Library(op._qualname.split("::")[0], "IMPL")
    library.impl(name, kernel, backend)
    op._plugkit_libraries = [library]  # a Library's registrations last as long as the object
    try:
        from torch._library.autograd import make_autograd_impl

        custom_autograd = make_autograd_impl(op._opoverload, op)
        below_inplace = torch._C._after_ADInplaceOrView_keyset
    except (ImportError, AttributeError):  # another torch: custom_op's autograd path alone
        return
    backend_key = getattr(torch._C.DispatchKey, backend)
    grad_enabled = torch._C.is_grad_enabled
    n_tensors = sum("Tensor" in str(a.type) for a in op._opoverload._schema.arguments)
    plain: dict[int, bool] = {}  # a keyset's bits -> nothing but the backend below autograd

    def is_plain(keyset) -> bool:
        # Masking and comparing keysets costs more than a launch's own Python work; their bits do not.
        bits = keyset.raw_repr() if hasattr(keyset, "raw_repr") else None
        answer = plain.get(bits)
        if answer is None:
            answer = (keyset & below_inplace).highestPriorityTypeId() == backend_key
            if bits is not None:
                plain[bits] = answer
        return answer

    def needs_grad(args) -> bool:
        for t in args[:n_tensors]:
            if t is not None and t.requires_grad:
                return True
        return False

    def autograd_fast_path(keyset, *args):
        if is_plain(keyset) and not (grad_enabled() and needs_grad(args)):
            return kernel(*args)
        return custom_autograd(keyset, *args)

    library.impl(name, autograd_fast_path, f"Autograd{backend}", with_keyset=True)
