"""The ``trainhooks`` command: fit, validate, predict, export, plugins, hooks, new-plugin.

One module per command (``fit``, ``validate``, ``predict``, ``export``, ``plugins``, ``hooks``,
``new_plugin``), the parser in ``args``, what the run commands share in ``runs`` and the shared
rendering in ``render``. ``trainhooks.cli:main`` is the console script.
"""

from __future__ import annotations

import logging
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

from trainhooks.cli.args import RUN_COMMANDS, _command_of, build_parser, scan_plugin_flags, split_plugin_values
from trainhooks.cli.render import _is_rank_zero, _rank_label, format_profile, hook_reference_markdown, summary_line
from trainhooks.errors import HookError, TrainhooksError
from trainhooks.host import PluginHost

if TYPE_CHECKING:
    from trainhooks.options import OptionTable

__all__ = [
    "build_parser",
    "format_profile",
    "hook_reference_markdown",
    "main",
    "scan_plugin_flags",
    "split_plugin_values",
    "summary_line",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainhooks`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    handler = _log_to_stderr()
    saved_filters = warnings.filters[:]
    if not _is_rank_zero():  # under torchrun: a warning every rank would print, printed by rank 0
        from trainhooks.host import PluginDisabledWarning

        warnings.simplefilter("ignore")
        warnings.simplefilter("default", PluginDisabledWarning)  # may concern one rank alone
    try:
        return _main(args_list)
    except HookError as exc:
        cause = exc.original
        if not isinstance(cause, TrainhooksError):  # a bug in the plugin: show its traceback
            print("".join(traceback.format_exception(type(cause), cause, cause.__traceback__)), file=sys.stderr, end="")
        print(f"trainhooks: error: {_rank_label()}{exc}", file=sys.stderr)
        return exc.exit_code
    except TrainhooksError as exc:
        distributed_error = type(exc).__name__ == "DistributedError"
        cause = getattr(exc, "original", None) if distributed_error else None
        if cause is not None and not isinstance(cause, TrainhooksError):  # this rank's own step failed
            print("".join(traceback.format_exception(type(cause), cause, cause.__traceback__)), file=sys.stderr, end="")
        label = "" if distributed_error else _rank_label()  # it names its rank
        print(f"trainhooks: error: {label}{exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("trainhooks: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `trainhooks hooks | head`
        sys.stderr.close()
        return 0
    finally:
        logging.getLogger("trainhooks").removeHandler(handler)
        warnings.filters[:] = saved_filters


def _log_to_stderr() -> logging.Handler:
    """The engine's warnings (signals, emergency checkpoints) as ``trainhooks: ...`` lines.

    Under torchrun every rank runs the same code and would print the same warning: ranks other
    than 0 print the engine's errors only.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING if _is_rank_zero() else logging.ERROR)
    handler.setFormatter(logging.Formatter("trainhooks: %(message)s"))
    logging.getLogger("trainhooks").addHandler(handler)
    return handler


def _main(argv: list[str]) -> int:
    command = _command_of(argv)
    host: PluginHost | None = None
    table: OptionTable | None = None
    if command in RUN_COMMANDS:
        from trainhooks.options import CORE_OPTIONS, collect_options

        enable, disable = scan_plugin_flags(argv)
        host = PluginHost()
        host.load_plugins(enable=enable, disable=disable)
        if command == "fit":  # a resume loads the plugins its run had (unless -p says otherwise)
            from trainhooks.cli import resume

            typed, typed_save_dir = resume.resume_target(argv)
            resume_path, checkpoint = resume.find_checkpoint(typed, typed_save_dir)
            active = [r.name for r in host.active() if r.source in ("builtin", "entrypoint", "module")]
            swap = resume.recorded_plugins(checkpoint, argv, enable, disable, active)
            if swap is not None:
                host = PluginHost()
                host.load_plugins(enable=[*enable, *swap[0]], disable=[*disable, *swap[1]])
        table = collect_options(host, reserved=CORE_OPTIONS)
    parser = build_parser(table)
    args = parser.parse_args(argv)
    if command == "fit" and args.command == "fit" and table is not None and args.resume is not None:
        if args.resume == "auto" and args.save_dir is None:
            args.save_dir = resume.AUTO_SAVE_DIR  # the same directory on every restart
        flags = {dest: spec.flags for dest, spec in table.specs.items()}
        resume.apply_recorded(args, argv, checkpoint, resume_path, flags)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "plugins":
        from trainhooks.cli.plugins import _cmd_plugins

        return _cmd_plugins(args)
    if args.command == "hooks":
        from trainhooks.cli.hooks import _cmd_hooks

        return _cmd_hooks(args)
    if args.command == "new-plugin":
        from trainhooks.cli.new_plugin import _cmd_new_plugin

        return _cmd_new_plugin(args)
    assert host is not None and table is not None
    plugin_options = {dest: getattr(args, dest) for dest in table.specs if hasattr(args, dest)}
    from trainhooks.cli import export, fit, predict, validate

    handler = {
        "fit": fit._cmd_fit,
        "validate": validate._cmd_validate,
        "predict": predict._cmd_predict,
        "export": export._cmd_export,
    }
    return handler[args.command](args, host, plugin_options)
