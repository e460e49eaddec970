"""The ``trainhooks`` command: fit, validate, predict, export, plugins, hooks, new-plugin.

One module per command (``fit``, ``validate``, ``predict``, ``export``, ``plugins``, ``hooks``,
``new_plugin``), the first pass over the command line (what decides the plugins) in
``preparse``, the full parser in ``args``, what the run commands share in ``runs`` and the
shared rendering in ``render``. ``trainhooks.cli:main`` is the console script.
"""

from __future__ import annotations

import logging
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trainhooks import interrupts
from trainhooks.cli.args import RUN_COMMANDS, build_parser, scan_plugin_flags
from trainhooks.cli.preparse import FirstPass, first_pass, split_plugin_values
from trainhooks.cli.render import _is_rank_zero, _rank_label, format_profile, hook_reference_markdown, summary_line
from trainhooks.errors import HookError, TrainhooksError
from trainhooks.plugin_manager import PluginManager

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
    resume_note = _resume_to_stdout()
    watching = interrupts.watch()  # a real Ctrl-C is told apart from a plugin's KeyboardInterrupt
    saved_filters, saved_format = warnings.filters[:], warnings.formatwarning
    warnings.formatwarning = _without_dispatch_location(saved_format)
    if not _is_rank_zero():  # under torchrun: a warning every rank would print, printed by rank 0
        from trainhooks.plugin_manager import PluginDisabledWarning

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
        original: BaseException | None = getattr(exc, "original", None) if distributed_error else None
        if original is not None and not isinstance(original, TrainhooksError):  # this rank's own step failed
            print(
                "".join(traceback.format_exception(type(original), original, original.__traceback__)),
                file=sys.stderr,
                end="",
            )
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
        interrupts.unwatch(watching)
        logging.getLogger("trainhooks").removeHandler(handler)
        logging.getLogger("trainhooks.resume").removeHandler(resume_note)
        logging.getLogger("trainhooks.resume").setLevel(logging.NOTSET)
        warnings.filters[:] = saved_filters  # type: ignore[index]
        warnings.formatwarning = saved_format


def _without_dispatch_location(default: Any) -> Any:
    """``warnings.formatwarning`` that prints a plugin's warning as ``trainhooks: warning: ...``.

    A plugin warns with ``stacklevel=2`` to point at its caller, which is the engine's generated
    dispatch code (``<trainhooks dispatch on_fit_epoch_end>:15``): a location that tells a user
    nothing. Warnings from anywhere else keep Python's format.
    """

    def formatwarning(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
    ) -> str:
        from trainhooks.dispatch import GENERATED_FILENAME  # on the first warning, not at start-up

        if str(filename).startswith(GENERATED_FILENAME):
            return f"trainhooks: warning: {message}\n"
        return str(default(message, category, filename, lineno, line))

    return formatwarning


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


def _resume_to_stdout() -> logging.Handler:
    """``Resuming from FILE (epoch E, step S)`` on stdout, also under ``--quiet``: which file a
    run continues from is never noise (the Trainer prints it itself when verbose)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(message)s"))
    resume_logger = logging.getLogger("trainhooks.resume")
    resume_logger.setLevel(logging.INFO)
    resume_logger.addHandler(handler)
    return handler


def _main(argv: list[str]) -> int:
    typed = first_pass(argv)  # what decides the plugins, and so the full parser's options
    command = typed.command
    plugin_manager: PluginManager | None = None
    table: OptionTable | None = None
    resuming: tuple[Any, Any] = (None, None)  # (checkpoint path, its contents) a fit --resume continues
    if command in RUN_COMMANDS:
        if not typed.asks_for_help and not typed.quiet and _is_rank_zero():
            # At once, before torch, the plugins and the task load (seconds on a cold start).
            from trainhooks import __version__

            print(f"trainhooks {__version__} {command}: loading torch, plugins and the task...", flush=True)
        plugin_manager, resuming = _load_run_plugins(typed, argv)
        from trainhooks.options import CORE_OPTIONS, collect_options

        table = collect_options(plugin_manager, reserved=CORE_OPTIONS)
    parser = build_parser(table)
    args = parser.parse_args(argv)
    if command == "fit" and args.command == "fit" and table is not None and args.resume is not None:
        if not typed.asks_for_help:
            _apply_resume(args, argv, table, *resuming)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _run(args, plugin_manager, table)
    except SystemExit as exc:  # argparse is done: whatever exits now (a task, a plugin's setup) failed
        raise _exit_error(exc, args.command) from exc


def _load_run_plugins(typed: FirstPass, argv: list[str]) -> tuple[PluginManager, tuple[Any, Any]]:
    """The plugins of a run command, and for ``fit --resume`` the checkpoint it continues: a
    resume loads the plugins its run had, unless ``-p`` says otherwise."""
    enable, disable, helping = typed.enable, typed.disable, typed.asks_for_help
    plugin_manager = PluginManager()
    # --help always works: a plugin that cannot load is named (its options are missing), not
    # raised; running the command still refuses it.
    plugin_manager.load_plugins(enable=enable, disable=disable, strict=not helping)
    if helping:
        for rec in plugin_manager.records.values():
            if rec.status == "error":
                print(f"trainhooks: note: {rec.reason} (its options are not listed below)", file=sys.stderr)
        return plugin_manager, (None, None)
    if typed.command != "fit":
        return plugin_manager, (None, None)
    from trainhooks.cli import resume

    resume_path, checkpoint = resume.find_checkpoint(typed.resume, typed.save_dir)
    active = [r.name for r in plugin_manager.active() if r.source in ("builtin", "entrypoint", "module")]
    swap = resume.recorded_plugins(checkpoint, argv, enable, disable, active)
    if swap is not None:
        plugin_manager = PluginManager()
        plugin_manager.load_plugins(enable=[*enable, *swap[0]], disable=[*disable, *swap[1]])
    return plugin_manager, (resume_path, checkpoint)


def _apply_resume(args: Any, argv: list[str], table: OptionTable, resume_path: Any, checkpoint: Any) -> None:
    """Fill what was not typed from the resumed run's record (trainhooks.cli.resume)."""
    from trainhooks.cli import resume

    if args.resume == "auto" and args.save_dir is None:
        args.save_dir = resume.AUTO_SAVE_DIR  # the same directory on every restart
    # The enabled plugins' options (an opt-in plugin's recorded defaults would be refused), with
    # the --no-FLAG spelling of a bool setting, so that an explicit one overrides.
    flags: dict[str, Sequence[str]] = {
        dest: resume.option_spellings(spec.flags, spec.kwargs.get("action"))
        for dest, spec in table.specs.items()
        if spec.plugin in table.active_plugins
    }
    resume.apply_recorded(args, argv, checkpoint, resume_path, flags)


def _exit_error(exc: SystemExit, command: str | None) -> TrainhooksError:
    """A ``sys.exit()`` outside any hook (hooks report their own): a failure naming where it was called."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return TrainhooksError(
        f"sys.exit({exc.code!r}) was called{where} during 'trainhooks {command}'; the command did not finish"
    )


def _run(args: Any, plugin_manager: PluginManager | None, table: OptionTable | None) -> int:
    if args.command == "plugins":
        from trainhooks.cli.plugins import _cmd_plugins

        return _cmd_plugins(args)
    if args.command == "hooks":
        from trainhooks.cli.hooks import _cmd_hooks

        return _cmd_hooks(args)
    if args.command == "new-plugin":
        from trainhooks.cli.new_plugin import _cmd_new_plugin

        return _cmd_new_plugin(args)
    assert plugin_manager is not None and table is not None
    plugin_options = {dest: getattr(args, dest) for dest in table.specs if hasattr(args, dest)}
    from trainhooks.cli import export, fit, predict, validate

    handler = {
        "fit": fit._cmd_fit,
        "validate": validate._cmd_validate,
        "predict": predict._cmd_predict,
        "export": export._cmd_export,
    }
    return handler[args.command](args, plugin_manager, plugin_options)
