"""Whether two maps compute the same, so one call can map several clients' rows at once.

The tutorial's ``preprocess`` defines a new ``batch_format_fn`` for every
client: distinct objects, one computation. Two functions count as the same
when they are one object, or share one code object, one globals dict, and
the very same default and closure values; two methods, when they are one
function bound to one object.

>>> def preprocess():
...     def batch_format_fn(element):
...         return element * 2
...     return batch_format_fn
>>> same_function(preprocess(), preprocess()), same_function(preprocess(), lambda element: element * 2)
(True, False)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

__all__ = ["function_parts", "same_function", "same_functions"]


def _identical(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def function_parts(fn: Any) -> Optional[tuple[Any, Any, Any, tuple[str, ...], list[Any]]]:
    """What a function or bound method computes with: ``(code, globals, bound object, keyword-default
    names, closure + default + keyword-default values)``; None for other callables or an empty closure cell."""
    owner = getattr(fn, "__self__", None)
    function = getattr(fn, "__func__", fn) if owner is not None else fn
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    try:
        values = [cell.cell_contents for cell in function.__closure__ or ()]
    except ValueError:  # an empty closure cell
        return None
    keywords = function.__kwdefaults__ or {}
    values += list(function.__defaults__ or ()) + [keywords[k] for k in sorted(keywords)]
    return code, function.__globals__, owner, tuple(sorted(keywords)), values


def same_function(a: Any, b: Any) -> bool:
    """`a` is `b`, or both are functions (or methods of one object) of one code, globals, defaults and closure values."""
    if a is b:
        return True
    parts_a, parts_b = function_parts(a), function_parts(b)
    if parts_a is None or parts_b is None:
        return False
    return (all(x is y for x, y in zip(parts_a[:3], parts_b[:3])) and parts_a[3] == parts_b[3]
            and _identical(parts_a[4], parts_b[4]))


def same_functions(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Pairwise `same_function` over two sequences of maps of equal length."""
    return len(a) == len(b) and all(same_function(x, y) for x, y in zip(a, b))
