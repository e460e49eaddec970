"""``trainhooks hooks``: every hook with its signature; ``--loop`` the call map; ``--markdown`` the reference."""

from __future__ import annotations

import argparse
import inspect

from trainhooks.cli.preparse import split_plugin_values
from trainhooks.cli.render import hook_reference_markdown
from trainhooks.plugin_manager import PluginManager


def _cmd_hooks(args: argparse.Namespace) -> int:
    from trainhooks import loopmap

    if args.loop:
        enable, disable = split_plugin_values(args.plugin)
        plugin_manager = PluginManager()
        plugin_manager.load_plugins(enable=enable, disable=disable, strict=False)
        print(loopmap.render(plugin_manager))
        return 0
    if args.markdown:
        print(hook_reference_markdown(), end="")
        return 0
    plugin_manager = PluginManager()
    for name in plugin_manager.spec_names:
        caller = getattr(plugin_manager.hook, name)
        spec = caller.spec
        flags = [flag for flag in ("firstresult", "historic") if spec.opts.get(flag)]
        doc = (inspect.getdoc(spec.function) or "").replace("``", "")
        first = doc.splitlines()[0] if doc else ""
        tag = f"  [{', '.join(flags)}]" if flags else ""
        print(f"{name}({', '.join(spec.argnames)}){tag}")
        print(f"    {first}")
    return 0
