"""Attributes of a scaffolded op: ``NAME:TYPE=DEFAULT`` parsed, and their defaults as C++ and
Python source."""
from __future__ import annotations

import math
import json
from typing import Any

from ..errors import ScaffoldError, SchemaError
from ..expr import FLOAT32_MAX
from ..schema import ATTR_TYPES, Attr
from .names import RESERVED_ATTR_NAMES, _check_identifier


# --------------------------------------------------------------------------- attributes

def parse_attr(text: str) -> Attr:
    """``name:type=default`` (or ``name:type``, default 0 / empty) as an :class:`Attr`.
    Arrays are comma separated: ``axes:int64[]=0,1``."""
    head, has_default, default_text = text.partition("=")
    name, has_type, type_name = head.partition(":")
    name, type_name = name.strip(), type_name.strip()
    if not has_type or not type_name:
        raise ScaffoldError(f"--attr {text!r}: give a type, as in {name or 'alpha'}:float32=1.0 "
                            f"(types: {', '.join(ATTR_TYPES)})")
    _check_identifier("attribute", name, RESERVED_ATTR_NAMES)
    if type_name not in ATTR_TYPES:
        raise ScaffoldError(f"--attr {text!r}: unknown type {type_name!r}; use one of {', '.join(ATTR_TYPES)}")
    base = type_name.rstrip("[]")

    def scalar(item: str):
        item = item.strip()
        try:
            if base.startswith("int"):
                return int(item, 0)
            value = float(item)
        except ValueError:
            raise ScaffoldError(f"--attr {text!r}: {item!r} is not a {base} value") from None
        if not math.isfinite(value):
            raise ScaffoldError(f"--attr {text!r}: the default must be finite")
        if abs(value) > FLOAT32_MAX:
            raise ScaffoldError(f"--attr {text!r}: {item} is not a float32 (at most {FLOAT32_MAX:.7g} in magnitude)")
        return value

    if type_name == "string":
        if any(not (32 <= ord(c) < 127) or c in '"\\' for c in default_text):
            raise ScaffoldError(f"--attr {text!r}: string defaults are printable ASCII without quotes or backslashes")
        default: Any = default_text
    elif type_name.endswith("[]"):
        default = [scalar(v) for v in default_text.split(",")] if default_text.strip() else []
    else:
        default = scalar(default_text) if has_default else 0
    try:
        return Attr(name, type_name, default)
    except SchemaError as exc:
        raise ScaffoldError(f"--attr {text!r}: {exc}") from None


def _cpp_float(value: float) -> str:
    text = repr(float(value))
    return text + "F" if ("." in text or "e" in text) else text + ".0F"


def _cpp_int(value: int, type_name: str) -> str:
    if type_name.startswith("int64") and value == -(2 ** 63):
        return "INT64_MIN"
    if type_name.startswith("int32") and value == -(2 ** 31):
        return "INT32_MIN"
    return str(value)


def cpp_default(attr: Attr) -> str:
    """The C++ default member initializer of an attribute: `= 1e-05F`, `{0, 1}`, `= "fast"`."""
    if attr.type == "string":
        return f' = "{attr.default}"' if attr.default else ""
    if attr.is_array:
        items = [_cpp_float(v) if attr.type.startswith("float") else _cpp_int(v, attr.type) for v in attr.default]
        return "{" + ", ".join(items) + "}" if items else ""
    if attr.type == "float32":
        return f" = {_cpp_float(attr.default)}"
    return f" = {_cpp_int(attr.default, attr.type)}"


def py_literal(value: Any) -> str:
    """A Python literal in the project's style: strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(map(py_literal, value)) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(map(py_literal, value)) + "]"
    return repr(value)


def py_default(attr: Attr) -> str:
    return py_literal(attr.default)


def other_value(attr: Attr) -> Any:
    """A valid value that differs from the default: what the generated tests set."""
    if attr.type == "string":
        return attr.default + "x"
    if attr.is_array:
        extra = 1.5 if attr.type.startswith("float") else 1
        return list(attr.default) + [extra]
    if attr.type == "float32":
        return attr.default * 2 + 0.5
    limit = 2 ** 31 - 1 if attr.type == "int32" else 2 ** 63 - 1
    return attr.default + 1 if attr.default < limit else attr.default - 1

