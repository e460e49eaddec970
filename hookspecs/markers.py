"""The two pluggy markers of the ``trainhooks`` project.

They live here, beside the specs, so that ``trainhooks.hookspecs`` imports nothing else of
ours; :mod:`trainhooks` re-exports them as ``trainhooks.hookspec`` and ``trainhooks.hookimpl``.

``hookimpl`` is pluggy's marker with one addition: ``rank_zero_only=True`` declares that an
implementation runs on the global rank-zero process only (loggers, checkpoint writers,
notifiers). The dispatcher reads the flag; pluggy itself ignores the extra key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

import pluggy

PROJECT_NAME = "trainhooks"
"""The pluggy project name: markers of another project are not picked up."""

ENTRY_POINT_GROUP = "trainhooks"
"""The importlib-metadata entry-point group third-party plugins register under."""

F = TypeVar("F", bound=Callable[..., Any])

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marks a hook specification (used by ``trainhooks.hookspecs`` only)."""


class HookimplMarker:
    """pluggy's implementation marker, plus ``rank_zero_only`` (pluggy's class is final: we wrap it)."""

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name
        self._mark = pluggy.HookimplMarker(project_name)

    @overload
    def __call__(
        self,
        function: F,
        *,
        hookwrapper: bool = ...,
        optionalhook: bool = ...,
        tryfirst: bool = ...,
        trylast: bool = ...,
        specname: str | None = ...,
        wrapper: bool = ...,
        rank_zero_only: bool = ...,
    ) -> F: ...

    @overload
    def __call__(
        self,
        function: None = ...,
        *,
        hookwrapper: bool = ...,
        optionalhook: bool = ...,
        tryfirst: bool = ...,
        trylast: bool = ...,
        specname: str | None = ...,
        wrapper: bool = ...,
        rank_zero_only: bool = ...,
    ) -> Callable[[F], F]: ...

    def __call__(
        self,
        function: Any = None,
        *,
        hookwrapper: bool = False,
        optionalhook: bool = False,
        tryfirst: bool = False,
        trylast: bool = False,
        specname: str | None = None,
        wrapper: bool = False,
        rank_zero_only: bool = False,
    ) -> Any:
        """Mark a function or method as a ``trainhooks`` hook implementation.

        Arguments are pluggy's (``tryfirst``, ``trylast``, ``wrapper``, ``specname``, ...) plus
        ``rank_zero_only``: when true the implementation is skipped on every process but global
        rank zero in distributed runs.
        """

        def mark(func: F) -> F:
            marked = self._mark(
                func,
                hookwrapper=hookwrapper,
                optionalhook=optionalhook,
                tryfirst=tryfirst,
                trylast=trylast,
                specname=specname,
                wrapper=wrapper,
            )
            getattr(marked, self.project_name + "_impl")["rank_zero_only"] = rank_zero_only
            return marked

        if function is None:
            return mark
        return mark(function)


hookimpl = HookimplMarker(PROJECT_NAME)
"""Marks a hook implementation: ``@trainhooks.hookimpl`` or ``@trainhooks.hookimpl(tryfirst=True)``."""
