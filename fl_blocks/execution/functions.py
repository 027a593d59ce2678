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
from typing import Any

__all__ = ["same_function", "same_functions"]


def _identical(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def same_function(a: Any, b: Any) -> bool:
    """`a` is `b`, or both are functions (or methods of one object) of one code, globals, defaults and closure values."""
    if a is b:
        return True
    owner = getattr(a, "__self__", None)
    if owner is not getattr(b, "__self__", None):  # methods of two objects (or a method and a function)
        return False
    if owner is not None:
        a, b = getattr(a, "__func__", a), getattr(b, "__func__", b)
        if a is b:
            return True
    code = getattr(a, "__code__", None)
    if code is None or code is not getattr(b, "__code__", None) or a.__globals__ is not b.__globals__:
        return False
    try:
        cells_a = [c.cell_contents for c in a.__closure__ or ()]
        cells_b = [c.cell_contents for c in b.__closure__ or ()]
    except ValueError:  # an empty closure cell
        return False
    keywords_a, keywords_b = a.__kwdefaults__ or {}, b.__kwdefaults__ or {}
    return (_identical(a.__defaults__ or (), b.__defaults__ or ()) and _identical(cells_a, cells_b)
            and keywords_a.keys() == keywords_b.keys() and all(keywords_a[k] is keywords_b[k] for k in keywords_a))


def same_functions(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Pairwise `same_function` over two sequences of maps of equal length."""
    return len(a) == len(b) and all(same_function(x, y) for x, y in zip(a, b))
