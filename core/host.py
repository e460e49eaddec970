"""Deprecated: the plugin manager's old module. Use :mod:`trainhooks.plugin_manager`.

``trainhooks.host`` and its class ``PluginHost`` are the names the plugin manager had before it
got one name everywhere (class :class:`trainhooks.PluginManager`, module
:mod:`trainhooks.plugin_manager`, trainer attribute ``trainer.plugin_manager``). Code written
against the old names keeps working: every name of :mod:`trainhooks.plugin_manager` is reachable
here, and ``PluginHost`` is :class:`~trainhooks.plugin_manager.PluginManager` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainhooks import plugin_manager as _plugin_manager

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ forwards (and warns for PluginHost)
    from trainhooks.plugin_manager import *  # noqa: F403
    from trainhooks.plugin_manager import PluginManager as PluginHost  # noqa: F401


def __getattr__(name: str) -> Any:
    return getattr(_plugin_manager, name)
