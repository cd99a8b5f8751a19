"""Elementwise expressions for ``plugkit new --kind elementwise --expr``.

An expression such as ``"x * sigmoid(x)"`` or ``"where(a > 0, a, alpha * a) + b"``
is parsed with :mod:`ast` and translated three times: into CUDA C++ that computes
in fp32 (``expf``, ``tanhf``, ``1.0F / (1.0F + expf(-x))``...), into numpy for
the op's reference, and into PyTorch for its torch_reference (the benchmark's
eager and torch.compile baseline). Only a small whitelist passes: numbers, the op's inputs and
scalar attributes, ``+ - * / **``, unary minus, the functions in
:data:`FUNCTIONS`, and comparisons as the condition of ``where``.
"""
from __future__ import annotations

import ast
import dataclasses
import math
from typing import Callable, Sequence

from .errors import ExprError


# Precedence of what a printed expression is, for deciding where parentheses go.
_COND, _CMP, _ADD, _MUL, _UNARY, _ATOM = range(6)


@dataclasses.dataclass(frozen=True)
class Function:
    arity: int
    cuda: Callable[..., str]   # printed arguments -> CUDA expression (fp32)
    numpy: Callable[..., str]  # printed arguments -> numpy expression (float64)
    doc: str
    cuda_prec: int = _ATOM     # what the printed expression is, for parentheses around it
    numpy_prec: int = _ATOM


def _f(arity, cuda, numpy, doc, cuda_prec=_ATOM, numpy_prec=_ATOM):
    return Function(arity, cuda, numpy, doc, cuda_prec, numpy_prec)


# Arguments arrive printed; those a template puts next to an operator arrive
# parenthesized where needed (see _Printer.call).
FUNCTIONS: dict[str, Function] = {
    "abs": _f(1, lambda x: f"fabsf({x})", lambda x: f"np.abs({x})", "|x|"),
    "exp": _f(1, lambda x: f"expf({x})", lambda x: f"np.exp({x})", "e^x"),
    "expm1": _f(1, lambda x: f"expm1f({x})", lambda x: f"np.expm1({x})", "e^x - 1"),
    "log": _f(1, lambda x: f"logf({x})", lambda x: f"np.log({x})", "natural logarithm"),
    "log1p": _f(1, lambda x: f"log1pf({x})", lambda x: f"np.log1p({x})", "log(1 + x)"),
    "sqrt": _f(1, lambda x: f"sqrtf({x})", lambda x: f"np.sqrt({x})", "square root"),
    "rsqrt": _f(1, lambda x: f"rsqrtf({x})", lambda x: f"1.0 / np.sqrt({x})", "1 / sqrt(x)", numpy_prec=_MUL),
    "sin": _f(1, lambda x: f"sinf({x})", lambda x: f"np.sin({x})", "sine"),
    "cos": _f(1, lambda x: f"cosf({x})", lambda x: f"np.cos({x})", "cosine"),
    "tan": _f(1, lambda x: f"tanf({x})", lambda x: f"np.tan({x})", "tangent"),
    "atan": _f(1, lambda x: f"atanf({x})", lambda x: f"np.arctan({x})", "arc tangent"),
    "tanh": _f(1, lambda x: f"tanhf({x})", lambda x: f"np.tanh({x})", "hyperbolic tangent"),
    "erf": _f(1, lambda x: f"erff({x})", lambda x: f"_erf({x})", "error function"),
    "floor": _f(1, lambda x: f"floorf({x})", lambda x: f"np.floor({x})", "round down"),
    "ceil": _f(1, lambda x: f"ceilf({x})", lambda x: f"np.ceil({x})", "round up"),
    "sigmoid": _f(1, lambda x: f"1.0F / (1.0F + expf(-{x}))", lambda x: f"1.0 / (1.0 + np.exp(-{x}))",
                  "1 / (1 + e^-x)", _MUL, _MUL),
    "relu": _f(1, lambda x: f"fmaxf({x}, 0.0F)", lambda x: f"np.fmax({x}, 0.0)", "max(x, 0)"),
    "softplus": _f(1, lambda x: f"fmaxf({x}, 0.0F) + log1pf(expf(-fabsf({x})))",
                   lambda x: f"np.fmax({x}, 0.0) + np.log1p(np.exp(-np.abs({x})))", "log(1 + e^x)",
                   _ADD, _ADD),
    "minimum": _f(2, lambda a, b: f"fminf({a}, {b})", lambda a, b: f"np.fmin({a}, {b})", "smaller of a, b"),
    "maximum": _f(2, lambda a, b: f"fmaxf({a}, {b})", lambda a, b: f"np.fmax({a}, {b})", "larger of a, b"),
    "pow": _f(2, lambda a, b: f"powf({a}, {b})", lambda a, b: f"np.power({a}, {b})", "a^b"),
    "fmod": _f(2, lambda a, b: f"fmodf({a}, {b})", lambda a, b: f"np.fmod({a}, {b})",
               "remainder of a / b, with a's sign (C's fmod)"),
    "clip": _f(3, lambda x, lo, hi: f"fminf(fmaxf({x}, {lo}), {hi})",
               lambda x, lo, hi: f"np.fmin(np.fmax({x}, {lo}), {hi})", "x limited to [lo, hi]"),
    "where": _f(3, lambda c, a, b: f"{c} ? {a} : {b}", lambda c, a, b: f"np.where({c}, {a}, {b})",
                "a where the comparison c holds, else b", cuda_prec=_COND),
}

# Templates that put an argument next to an operator need it as an atom: (function, argument index).
_ATOM_ARGS = {("sigmoid", 0)}

_BINARY = {ast.Add: ("+", _ADD), ast.Sub: ("-", _ADD), ast.Mult: ("*", _MUL), ast.Div: ("/", _MUL)}
_COMPARE = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!="}


@dataclasses.dataclass(frozen=True)
class Translation:
    """One expression in both languages, and what it uses."""

    source: str
    cuda: str
    numpy: str
    torch: str                  # fp32 tensors of the inputs, for torch_reference
    triton: str                 # fp32 values of the inputs, for a Triton kernel
    names: tuple[str, ...]      # inputs and attributes, in order of first use
    functions: tuple[str, ...]  # FUNCTIONS used, in order of first use


def _number(value: float, cuda: bool) -> str:
    text = repr(float(value))
    return text + "F" if cuda else text


class _Printer:
    """Prints the checked AST for one target language, with the parentheses precedence needs."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def __call__(self, node) -> tuple[str, int]:
        return getattr(self, type(node).__name__)(node)

    def wrap(self, node, at_least: int) -> str:
        text, prec = self(node)
        return text if prec >= at_least else f"({text})"

    def Constant(self, node):
        return _number(node.value, self.cuda), _ATOM

    def Name(self, node):
        return node.id, _ATOM

    def UnaryOp(self, node):
        operand = self.wrap(node.operand, _ATOM)  # never "--x", which C++ reads as a decrement
        return (operand if isinstance(node.op, ast.UAdd) else f"-{operand}"), _UNARY

    def BinOp(self, node):
        if isinstance(node.op, ast.Pow):
            return self.call("pow", [node.left, node.right])
        symbol, prec = _BINARY[type(node.op)]
        # The right operand is wrapped at equal precedence too: a - (b - c) and a + (b + c) stay as written.
        return f"{self.wrap(node.left, prec)} {symbol} {self.wrap(node.right, prec + 1)}", prec

    def Compare(self, node):
        symbol = _COMPARE[type(node.ops[0])]
        return f"{self.wrap(node.left, _ADD)} {symbol} {self.wrap(node.comparators[0], _ADD)}", _CMP

    def Call(self, node):
        return self.call(node.func.id, node.args)

    def call(self, name, args):
        fn = FUNCTIONS[name]
        printed = [self.wrap(a, _ATOM) if (name, i) in _ATOM_ARGS else self(a)[0] for i, a in enumerate(args)]
        if self.cuda:
            return fn.cuda(*printed), fn.cuda_prec
        return fn.numpy(*printed), fn.numpy_prec


# The functions in PyTorch, for the op's torch_reference (the benchmark's eager and torch.compile
# baseline): fp32 tensors in, the same math as the CUDA translation (fmin/fmax, C's fmod).
_TORCH = {
    "abs": "torch.abs({})", "exp": "torch.exp({})", "expm1": "torch.expm1({})", "log": "torch.log({})",
    "log1p": "torch.log1p({})", "sqrt": "torch.sqrt({})", "rsqrt": "torch.rsqrt({})", "sin": "torch.sin({})",
    "cos": "torch.cos({})", "tan": "torch.tan({})", "atan": "torch.atan({})", "tanh": "torch.tanh({})",
    "erf": "torch.erf({})", "floor": "torch.floor({})", "ceil": "torch.ceil({})", "sigmoid": "torch.sigmoid({})",
    "relu": "torch.relu({})", "softplus": "torch.nn.functional.softplus({})", "minimum": "torch.fmin({}, {})",
    "maximum": "torch.fmax({}, {})", "fmod": "torch.fmod({}, {})", "clip": "torch.fmin(torch.fmax({}, {}), {})",
    "where": "torch.where({}, {}, {})",
}
assert set(_TORCH) | {"pow"} == set(FUNCTIONS)


# The functions in Triton, for kernels of `plugkit new --lang triton`: fp32 values in, the same math
# as the CUDA translation (libdevice where triton.language has no such function).
_TRITON = {
    "abs": "tl.abs({})", "exp": "tl.exp({})", "expm1": "libdevice.expm1({})", "log": "tl.log({})",
    "log1p": "libdevice.log1p({})", "sqrt": "tl.sqrt_rn({})", "rsqrt": "tl.rsqrt({})", "sin": "tl.sin({})",
    "cos": "tl.cos({})", "tan": "libdevice.tan({})", "atan": "libdevice.atan({})", "tanh": "libdevice.tanh({})",
    "erf": "tl.erf({})", "floor": "tl.floor({})", "ceil": "tl.ceil({})", "sigmoid": "tl.sigmoid({})",
    "relu": "tl.maximum({}, 0.0)", "softplus": "tl.maximum({0}, 0.0) + libdevice.log1p(tl.exp(-tl.abs({0})))",
    "minimum": "tl.minimum({}, {})", "maximum": "tl.maximum({}, {})", "pow": "libdevice.pow({}, {})",
    "fmod": "libdevice.fmod({}, {})", "clip": "tl.minimum(tl.maximum({}, {}), {})", "where": "tl.where({}, {}, {})",
}
assert set(_TRITON) == set(FUNCTIONS)


class _TritonPrinter(_Printer):
    """Triton: Python numbers next to operators; functions from triton.language or libdevice."""

    def __init__(self):
        super().__init__(cuda=False)

    def call(self, name, args):
        printed = [self(a)[0] for a in args]
        prec = _ADD if name == "softplus" else _ATOM
        return _TRITON[name].format(*printed), prec


class _TorchPrinter(_Printer):
    """PyTorch: numbers stay Python floats next to operators; a torch function's argument that holds no
    tensor becomes a 0-dim tensor (torch.fmin(x, 0.5) needs one)."""

    def __init__(self, tensors: Sequence[str]):
        super().__init__(cuda=False)
        self.tensors = set(tensors)

    def holds_tensor(self, node) -> bool:
        return any(isinstance(n, ast.Name) and n.id in self.tensors for n in ast.walk(node))

    def call(self, name, args):
        if name == "pow":  # Python's operator takes tensors and numbers alike
            return f"{self.wrap(args[0], _ATOM)} ** {self.wrap(args[1], _ATOM)}", _UNARY
        printed = [self(a)[0] if self.holds_tensor(a) else f"torch.tensor({self(a)[0]})" for a in args]
        return _TORCH[name].format(*printed), _ATOM


MAX_LENGTH = 2000  # characters of an expression: a kernel's one line of math, not a program
MAX_DEPTH = 200    # nesting of operators and calls (a sum of n terms nests n deep)
FLOAT32_MAX = 3.4028234663852886e38


def _short(source: str) -> str:
    return repr(source if len(source) <= 60 else source[:57] + "...")


def parse(source: str) -> ast.expr:
    """The checked-size AST of an expression; ExprError when it is too long, too deep or not one."""
    if not isinstance(source, str) or not source.strip():
        raise ExprError("--expr is empty; give an expression such as \"x * sigmoid(x)\"")
    if len(source) > MAX_LENGTH:
        raise ExprError(f"--expr {_short(source)} is {len(source)} characters long; the limit is {MAX_LENGTH} "
                        f"(write longer math in the generated kernel's compute())")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"--expr {_short(source)} is not a valid expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExprError(f"--expr {_short(source)} is nested too deeply (at most {MAX_DEPTH} levels)") from None
    # Depth without recursion, so that the checks and printers below stay far from Python's limit.
    stack = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ExprError(f"--expr {_short(source)} is nested too deeply (at most {MAX_DEPTH} levels)")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return tree.body


def translate(source: str, tensors: Sequence[str], scalars: Sequence[str],
              other_attrs: Sequence[str] = ()) -> Translation:
    """Check ``source`` and translate it. ``tensors`` and ``scalars`` are the names it may use
    (inputs; numeric scalar attributes); ``other_attrs`` are attributes it may not use
    (arrays, strings), named in the error when it does."""
    body = parse(source)
    names: list[str] = []
    functions: list[str] = []
    known = set(tensors) | set(scalars)

    def fail(node, why):
        where = ast.get_source_segment(source.strip(), node) or source
        raise ExprError(f"--expr {_short(source)}: {why} (at {_short(where)})")

    def check(node, condition_allowed=False):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                fail(node, "only numbers may appear as constants")
            try:
                value = float(node.value)
            except OverflowError:
                value = math.inf
            if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
                fail(node, f"constants must be finite float32 numbers (at most {FLOAT32_MAX:.7g} in magnitude)")
        elif isinstance(node, ast.Name):
            if node.id in FUNCTIONS:
                fail(node, f"{node.id} is a function; call it: {node.id}(...)")
            if node.id in other_attrs:
                fail(node, f"attribute {node.id!r} is not a number (arrays and strings cannot be used in --expr)")
            if node.id not in known:
                fail(node, f"unknown name {node.id!r}; inputs: {', '.join(tensors) or 'none'}; "
                           f"scalar attributes: {', '.join(scalars) or 'none'} (declare more with --input/--attr)")
            if node.id not in names:
                names.append(node.id)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                fail(node, "only unary + and - are supported")
            check(node.operand)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
                hint = "; use fmod(a, b)" if isinstance(node.op, ast.Mod) else ""
                fail(node, f"only + - * / ** are supported{hint}")
            if isinstance(node.op, ast.Pow) and "pow" not in functions:
                functions.append("pow")
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.Compare):
            if not condition_allowed:
                fail(node, "a comparison may only be the first argument of where(c, a, b)")
            if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
                fail(node, "one comparison (> >= < <= == !=) per condition")
            check(node.left)
            check(node.comparators[0])
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                fail(node, f"unknown function {called!r}; available: {', '.join(sorted(FUNCTIONS))}")
            fn = FUNCTIONS[node.func.id]
            if node.keywords or len(node.args) != fn.arity:
                fail(node, f"{node.func.id} takes {fn.arity} positional argument(s)")
            if node.func.id not in functions:
                functions.append(node.func.id)
            for i, arg in enumerate(node.args):
                check(arg, condition_allowed=node.func.id == "where" and i == 0)
            if node.func.id == "where" and not isinstance(node.args[0], ast.Compare):
                fail(node, "where's first argument must be a comparison, e.g. where(x > 0, x, 0)")
        else:
            fail(node, f"{type(node).__name__} is not supported; use numbers, names, + - * / **, "
                       f"and the functions {', '.join(sorted(FUNCTIONS))}")

    check(body)
    cuda, _ = _Printer(cuda=True)(body)
    numpy, _ = _Printer(cuda=False)(body)
    torch, _ = _TorchPrinter(tensors)(body)
    triton, _ = _TritonPrinter()(body)
    return Translation(ast.unparse(body), cuda, numpy, torch, triton, tuple(names), tuple(functions))


def free_names(source: str) -> list[str]:
    """Names an expression uses that are not functions, in order of first use (for inferring inputs)."""
    body = parse(source)
    called = {id(n.func) for n in ast.walk(body) if isinstance(n, ast.Call)}
    out: list[str] = []
    for node in sorted((n for n in ast.walk(body) if isinstance(n, ast.Name)),
                       key=lambda n: (n.lineno, n.col_offset)):
        if id(node) not in called and node.id not in out:
            out.append(node.id)
    return out
