"""``trainhooks plugins``: installed plugins, their status, origin, versions and hooks."""

from __future__ import annotations

import argparse
import json

from trainhooks.cli.preparse import split_plugin_values
from trainhooks.plugin_manager import PluginManager


def _cmd_plugins(args: argparse.Namespace) -> int:
    enable, disable = split_plugin_values(args.plugin)
    plugin_manager = PluginManager()
    plugin_manager.load_plugins(enable=enable, disable=disable, strict=False)
    from trainhooks.options import CORE_OPTIONS, check_options

    check_options(plugin_manager, reserved=CORE_OPTIONS)
    records = list(plugin_manager.records.values())
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=2))
        return 0
    if not records:
        print("no plugins installed")
        return 0
    header = ("name", "status", "source", "distribution", "version", "hooks")
    rows = [
        (r.name, r.status, r.source, r.distribution or "-", r.version or "-", ", ".join(r.hooks) or "-")
        for r in records
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  hooks")
    for rec, row in zip(records, rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) + "  " + row[5])
        if rec.reason and rec.status != "active":
            print(f"    {rec.reason}")
        if rec.location:
            print(f"    code: {rec.location}")
        if args.verbose and rec.target:
            print(f"    entry point: {rec.target}")
    return 0
