"""What is kept about single clients across rounds: their Gram matrices, and whether they were seen.

A client is known by its plan key (see `fl_blocks.execution.plans`). Three tables:

- its Gram matrix over its own batches (the packed lower block triangle of
  `fl_blocks.execution.dual.grams_of`) and the span of columns its rows vary in
  (`fl_blocks.execution.columns.client_span`), least recently used first out
  beyond `GRAM_BYTES` in all;
- that it was seen in an earlier round (`note_seen`), so its Gram matrix pays
  off when it comes back (see `fl_blocks.execution.cache`);
- that its Gram matrix is not finite (rows with NaN or inf, or so large that
  float32 products overflow): its groups are stepped, as the loop computes them,
  without computing it again each round.

Kept Gram matrices and not-finite entries hold the objects their keys name,
so those ids stay unique (at most `MAX_NOT_FINITE` of the latter). A seen
key holds nothing: it only steers the choice between stepping and dual form.

>>> clear(); note_seen([("a",)]); is_known(("a",)), is_known(("b",))
(True, False)
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Optional

import numpy as np

from fl_blocks.execution.columns import ClientSpan, client_span
from fl_blocks.execution.dual import grams_of, own_panels, panel_span, place_panels
from fl_blocks.execution.plans import PlanFacts

__all__ = ["GRAM_BYTES", "MAX_NOT_FINITE", "MAX_SEEN", "assemble", "clear", "group_grams", "is_kept", "is_known", "kept_bytes",
           "note_seen", "not_finite", "spans"]

#: Bytes of clients' Gram matrices kept across rounds (3,400 EMNIST clients need about 94 MB).
GRAM_BYTES = 384 << 20
#: Clients remembered as seen.
MAX_SEEN = 1 << 20
#: Clients remembered as having no finite Gram matrix (each entry holds its data alive).
MAX_NOT_FINITE = 4096

Key = Any


class _Client(NamedTuple):
    references: tuple[Any, ...]
    packed: np.ndarray  # its batches' packed Gram panels (see `grams_of`), batch width `width`
    width: int
    span: ClientSpan  # where its rows vary

    @property
    def nbytes(self) -> int:
        return self.packed.nbytes + self.span.before.nbytes + self.span.after.nbytes


_GRAMS: "collections.OrderedDict[Key, _Client]" = collections.OrderedDict()
_SEEN: "collections.OrderedDict[Key, None]" = collections.OrderedDict()
_NOT_FINITE: "collections.OrderedDict[Key, tuple[Any, ...]]" = collections.OrderedDict()
_KEPT = {"bytes": 0}


def clear() -> None:
    """Forgets every kept Gram matrix, seen client and not-finite client."""
    for table in (_GRAMS, _SEEN, _NOT_FINITE):
        table.clear()
    _KEPT["bytes"] = 0


def kept_bytes() -> int:
    """Bytes of the Gram matrices kept now."""
    return _KEPT["bytes"]


def _remember(table: "collections.OrderedDict[Key, Any]", key: Key, value: Any, most: int) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > most:
        table.popitem(last=False)


def note_seen(keys: Iterable[Key]) -> None:
    """Remembers clients of a round, so their Gram matrices are kept when they come back."""
    for key in keys:
        _remember(_SEEN, key, None, MAX_SEEN)


def is_kept(key: Key) -> bool:
    """Whether the client's Gram matrix is kept."""
    return key in _GRAMS


def is_known(key: Key) -> bool:
    """Whether the client's Gram matrix is kept, or it was seen in an earlier round."""
    return key in _GRAMS or key in _SEEN


def spans(found: Sequence[Optional[PlanFacts]]) -> Optional[list[ClientSpan]]:
    """The kept clients' `ClientSpan`\\ s (clients without batches left out), or None if one is not kept."""
    keys = [f.key for f in found if f is not None]
    kept = [_GRAMS.get(key) for key in keys]
    return None if None in kept else [c.span for c in kept]  # type: ignore[union-attr]


def not_finite(found: Sequence[Optional[PlanFacts]]) -> bool:
    """Whether a client's Gram matrix was found not finite in an earlier round."""
    return bool(_NOT_FINITE) and any(f is not None and f.key in _NOT_FINITE for f in found)


def _finite_or_noted(grams: np.ndarray, found: Sequence[Optional[PlanFacts]]) -> bool:
    """Whether `grams` (one row per entry of `found`) are finite; notes the clients whose are not."""
    bad = ~np.isfinite(grams).all(axis=1)
    for i in np.flatnonzero(bad).tolist():
        facts = found[i]
        if facts is not None:
            _remember(_NOT_FINITE, facts.key, facts.references, MAX_NOT_FINITE)
    return not bad.any()


def group_grams(x: np.ndarray, width: int, found: Sequence[Optional[PlanFacts]]) -> Optional[np.ndarray]:
    """A group's own Gram matrices from its by-client rows `x` (not kept), or None (noted) if one is not finite."""
    grams = grams_of(x, width)
    return grams if _finite_or_noted(grams, found) else None


def assemble(x: np.ndarray, width: int, steps: int, sizes: Sequence[np.ndarray],
             found: Sequence[Optional[PlanFacts]]) -> Optional[np.ndarray]:
    """A group's packed Gram matrices, each client's cut into its slot: kept ones reused, missing ones computed and kept.

    `x` are the group's by-client rows, each client's first in its slot (all its batches but the last
    are `width` wide), `sizes` each client's batch sizes. Slots
    of clients without batches (None in `found`) hold ones (their rows are 0).
    None, with the offending clients noted, when a computed Gram matrix is not finite.
    """
    missing = [i for i, f in enumerate(found) if f is not None and f.key not in _GRAMS]
    new = grams_of(x if len(missing) == len(x) else x[missing], width) if missing else None  # (all missing: no copy)
    if new is not None and not _finite_or_noted(new, [found[i] for i in missing]):
        return None
    slot = {i: j for j, i in enumerate(missing)}
    grams = np.ones((len(found), panel_span(steps - 1, width).stop), np.float32)
    for i, facts in enumerate(found):
        if facts is None:
            continue
        if new is not None and i in slot and facts.key not in _GRAMS:  # (a client twice in a round: kept once)
            rows = int(sizes[i].sum())  # its real rows: the first of its slot
            packed, own_width = own_panels(new[slot[i]], width, len(sizes[i]), rows)
            own = _Client(facts.references, packed, own_width, client_span(x[i, :rows]))
            _GRAMS[facts.key] = own
            _KEPT["bytes"] += own.nbytes
        else:
            own = _GRAMS[facts.key]
            _GRAMS.move_to_end(facts.key)
        place_panels(grams[i], own.packed, own.width, width)
    while _KEPT["bytes"] > GRAM_BYTES and _GRAMS:
        _KEPT["bytes"] -= _GRAMS.popitem(last=False)[1].nbytes
    return grams
