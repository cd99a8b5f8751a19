"""``plugkit new``: a complete plugin from the templates in ``templates/``.

:func:`plan` turns a request (op name, kind, inputs, outputs, attributes,
dtypes, expression) into an :class:`OpSpec`, refusing names that cannot work
and explaining why; :func:`render` renders every file in memory; :func:`write`
writes them, refusing to overwrite without ``force``. A refused request writes
nothing: every check runs before the first file is written.

Kinds:

- ``elementwise``: inputs of one shape (or broadcasting to the first input's),
  one output; ``expr`` (e.g. ``"x * sigmoid(x)"``) becomes the CUDA kernel's
  math and the numpy reference (see :mod:`plugkit.expr`).
- ``rowwise``: one input; a reduction over the last axis, then an epilogue per
  element. Generated as softmax: one function over a row held in registers, with row-wide
  reductions (plugkit/rows.h).
- ``custom``: any inputs and outputs, output shapes declared with
  :class:`OutputShape`; the kernel copies input 0 to output 0 until the op is
  written in its place.

``lang="triton"`` (elementwise and rowwise) writes the kernel in Triton instead:
``kernel.py`` holds a ``@triton.jit`` kernel and its ``LAUNCH`` (arguments and grid
from the plugin's tensors and fields), which ``plugkit build`` compiles ahead of
time (:mod:`plugkit.triton_aot`); the C++ plugin class only launches it.

The package, by job: :mod:`.names` (limits and name checks), :mod:`.values` (attributes),
:mod:`.tensors` (custom tensors, output shapes, data-dependent dims), :mod:`.spec` (the request
checked into an :class:`OpSpec`), :mod:`.files` (rendering and all-or-nothing writing).
"""
from __future__ import annotations

from ..errors import ScaffoldError
from .files import check_clashes, check_root, render, scaffold, templates_dir, write
from .names import (CPP_NAMES, GENERATED_MARK, KERNEL_DTYPES, KINDS, LANGS, MAX_RANK, TRITON_KINDS,
                    check_op_name, class_name, snake_case)
from .spec import OpSpec, plan
from .tensors import (INPUT_ONLY_DTYPES, TENSOR_DTYPES, Bound, Dim, OutputShape, SizeOutput, parse_bound,
                      parse_output_shape, parse_tensor)
from .values import cpp_default, other_value, parse_attr, py_default, py_literal

__all__ = [
    "ScaffoldError", "check_clashes", "check_root", "render", "scaffold", "templates_dir", "write",
    "CPP_NAMES", "GENERATED_MARK", "KERNEL_DTYPES", "KINDS", "LANGS", "MAX_RANK", "TRITON_KINDS",
    "check_op_name", "class_name", "snake_case", "OpSpec", "plan", "INPUT_ONLY_DTYPES", "TENSOR_DTYPES",
    "Bound", "Dim", "OutputShape", "SizeOutput", "parse_bound", "parse_output_shape", "parse_tensor",
    "cpp_default", "other_value", "parse_attr", "py_default", "py_literal",
]
