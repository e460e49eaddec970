"""Keyword arguments checked by name: an unknown one is an error that names the right one.

Python's own ``TypeError: __init__() got an unexpected keyword argument 'max_step'`` says what
is wrong but not what is right. The public entry points (``Trainer(...)``, ``fit``, ...) are
wrapped by :func:`checked_keywords`, which, before the call, compares the keywords given with
the function's parameters. A misspelling gets the closest names (``accumulate_grad_batch`` →
``accumulate_grad_batches``), another framework's keyword gets ours (``max_epochs`` is
Lightning's ``epochs``, see :data:`trainhooks.vocabulary.PEER_KEYWORDS`). The check is one set
difference per call; the signature the type checker and ``inspect`` see is unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

from trainhooks.errors import UnknownKeywordError, suggest
from trainhooks.vocabulary import PEER_KEYWORDS

P = ParamSpec("P")
R = TypeVar("R")


def keyword_hint(name: str, accepted: Iterable[str]) -> str:
    """`` (did you mean epochs? max_epochs is the Lightning name)``, the closest names, or ``""``."""
    accepted = list(accepted)
    peer = PEER_KEYWORDS.get(name)
    if peer is not None and peer[0] in accepted:
        return f" (did you mean {peer[0]}? {name} is the {peer[1]} name)"
    hits = suggest(name, accepted)
    return f" (did you mean {' / '.join(hits)}?)" if hits else ""


def checked_keywords(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn``, raising :class:`~trainhooks.errors.UnknownKeywordError` for an unknown keyword."""
    parameters = inspect.signature(fn).parameters.values()
    accepted = frozenset(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
    owner, _, method = fn.__qualname__.rpartition(".")
    where = f"{owner}()" if method == "__init__" else f"{fn.__qualname__}()"

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        if not accepted.issuperset(kwargs):
            unknown = [name for name in kwargs if name not in accepted]
            named = ", ".join(f"{name!r}{keyword_hint(name, sorted(accepted))}" for name in unknown)
            noun = "keyword argument" if len(unknown) == 1 else "keyword arguments"
            raise UnknownKeywordError(f"{where} got an unexpected {noun} {named}", names=unknown)
        return fn(*args, **kwargs)

    return call


__all__ = ["checked_keywords", "keyword_hint"]
