"""Elementwise expressions for ``plugkit new --kind elementwise --expr``.

An expression such as ``"x * sigmoid(x)"`` or ``"where(a > 0, a, alpha * a) + b"``
is parsed with :mod:`ast` and translated twice: into CUDA C++ that computes in
fp32 (``expf``, ``tanhf``, ``1.0F / (1.0F + expf(-x))``...) and into numpy for
the op's reference. Only a small whitelist passes: numbers, the op's inputs and
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


def translate(source: str, tensors: Sequence[str], scalars: Sequence[str],
              other_attrs: Sequence[str] = ()) -> Translation:
    """Check ``source`` and translate it. ``tensors`` and ``scalars`` are the names it may use
    (inputs; numeric scalar attributes); ``other_attrs`` are attributes it may not use
    (arrays, strings), named in the error when it does."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"--expr {source!r} is not a valid expression: {exc.msg}") from None
    names: list[str] = []
    functions: list[str] = []
    known = set(tensors) | set(scalars)

    def fail(node, why):
        where = ast.get_source_segment(source.strip(), node) or source
        raise ExprError(f"--expr {source!r}: {why} (at {where!r})")

    def check(node, condition_allowed=False):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                fail(node, "only numbers may appear as constants")
            if not math.isfinite(float(node.value)):
                fail(node, "constants must be finite")
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

    check(tree.body)
    cuda, _ = _Printer(cuda=True)(tree.body)
    numpy, _ = _Printer(cuda=False)(tree.body)
    return Translation(ast.unparse(tree.body), cuda, numpy, tuple(names), tuple(functions))


def free_names(source: str) -> list[str]:
    """Names an expression uses that are not functions, in order of first use (for inferring inputs)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExprError(f"--expr {source!r} is not a valid expression: {exc.msg}") from None
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    out: list[str] = []
    for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.Name)),
                       key=lambda n: (n.lineno, n.col_offset)):
        if id(node) not in called and node.id not in out:
            out.append(node.id)
    return out
