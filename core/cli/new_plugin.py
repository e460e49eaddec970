"""``trainhooks new-plugin``: bake the plugin template into a package (offline)."""

from __future__ import annotations

import argparse


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    from trainhooks.newplugin import bake, next_steps

    baked = bake(
        args.name,
        output_dir=args.output_dir,
        module_name=args.module_name,
        project_slug=args.project_slug,
        author=args.author,
        email=args.email,
        description=args.description,
        version=args.plugin_version,
        hooks=args.hooks,
        license=args.license,
        interactive=args.interactive,
    )
    print(next_steps(baked))
    return 0
