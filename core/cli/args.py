"""The command line's parser: every command's flags, the plugin flags, and value checks.

Plugin options join the parser of ``fit``/``validate``/``predict``/``export``: the ``-p``
flags are read first (:mod:`trainhooks.cli.preparse`), plugins are loaded, their ``add_options``
hooks run, and only then is the full parser built, so ``trainhooks fit --help`` shows every
installed plugin's options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from trainhooks import __version__
from trainhooks.cli.preparse import first_pass

if TYPE_CHECKING:
    from trainhooks.options import OptionTable

_N = TypeVar("_N", int, float)

RUN_COMMANDS = ("fit", "validate", "predict", "export")


def scan_plugin_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``-p NAME`` / ``-p no:NAME`` (also ``-pNAME``, ``--plugin NAME``) → (enable, disable)."""
    found = first_pass(argv)
    return found.enable, found.disable


def _add_plugin_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="enable plugin NAME (an entry point or an importable module); '-p no:NAME' disables it. Repeatable.",
    )


def _add_task_flags(parser: argparse.ArgumentParser, *, training: bool) -> None:
    """The flags of a run command: the task and where it runs, then fit's or the weights."""
    parser.add_argument(
        "--task",
        default=None,
        metavar="MODULE:FUNCTION",
        help="function returning a trainhooks.Task (default: the built-in digits task)",
    )
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="batch size passed to the task")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument(
        "--save-dir",
        type=_path,
        default=None,
        help="output directory (default: runs/train for fit, like Trainer; runs/<command> otherwise; numbered)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    if training:
        _add_fit_flags(parser)
        _add_stop_and_restart_flags(parser)
        _add_loop_controls(parser)
        parser.add_argument(
            "--dist-sync-every",
            type=_positive_int,
            default=1,
            metavar="N",
            help="under torchrun: agree on stop requests every N batches (default: 1)",
        )
    else:
        parser.add_argument(
            "--weights",
            type=_path,
            default=None,
            help="checkpoint (best.pt/last.pt) or state_dict file "
            "(default: the best.pt of the latest run in runs/, from its run.json)",
        )


def _add_fit_flags(parser: argparse.ArgumentParser) -> None:
    """What fit trains with: length, lr, name, resume, profiling, plugin failures, precision."""
    parser.add_argument("--epochs", type=_positive_int, default=None, help="maximum epochs (default: 10)")
    parser.add_argument("--lr", type=_positive_float, default=None, help="learning rate passed to the task")
    parser.add_argument("--name", default=None, help="run name (default: the save_dir's name)")
    parser.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT|auto",
        help="continue the run that wrote CHECKPOINT, with its recorded settings (flags given override them); "
        "'auto': the newest good checkpoint in --save-dir (default runs/train), or a fresh start",
    )
    parser.add_argument(
        "--profile-hooks", action="store_true", help="print the time spent per plugin per hook at the end"
    )
    parser.add_argument(
        "--non-critical",
        action="append",
        default=[],
        metavar="NAME",
        help="a failure of plugin NAME disables it instead of stopping the run (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--precision",
        default="32",
        choices=["32", "bf16", "16"],
        help="32, or mixed precision: bf16 (autocast) or 16 (autocast + GradScaler) (default: 32)",
    )


def _add_stop_and_restart_flags(parser: argparse.ArgumentParser) -> None:
    """How fit waits, stops on a signal, and treats a save dir that holds a run."""
    parser.add_argument(
        "--dist-timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help="under torchrun: fail instead of waiting longer than this for another rank (default: 300)",
    )
    parser.add_argument(
        "--stop-timeout",
        type=_non_negative_float,
        default=None,
        metavar="SECONDS",
        help="after SIGTERM or the pre-emption signal, exit (emergency checkpoint first) if training has not "
        "stopped within this time, e.g. a stuck rank (default: 25; 0: wait forever)",
    )
    parser.add_argument(
        "--preempt-signal",
        default=None,
        metavar="SIGNAL",
        help="the scheduler's pre-emption signal: stop, checkpoint and exit with 75 (default: SIGUSR1; none: off)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in a --save-dir that holds a previous run (deletes its checkpoints and metrics.csv)",
    )


def _add_loop_controls(parser: argparse.ArgumentParser) -> None:
    """The loop controls (Trainer arguments of the same names; see trainhooks.controls)."""
    group = parser.add_argument_group("loop controls")
    counts = (
        ("--accumulate-grad-batches", "one optimizer step per N batches, gradients averaged (default: 1)"),
        ("--max-steps", "stop after N optimizer steps"),
        ("--min-epochs", "defer any stop until N epochs are done"),
        ("--min-steps", "defer any stop until N steps are done"),
        ("--val-every-n-steps", "also validate every N steps"),
    )
    for flag, text in counts:
        group.add_argument(flag, type=_positive_int, default=None, metavar="N", help=text)
    group.add_argument(
        "--val-every-n-epochs",
        type=_positive_int_or_never,
        default=None,
        metavar="N|never",
        help=f"validate at the end of every N-th epoch (default: 1; '{NEVER}': only --val-every-n-steps validates)",
    )
    group.add_argument(
        "--limit-train-batches",
        type=_count_or_fraction,
        default=None,
        metavar="N|F",
        help="train on N batches per epoch, or a fraction F in (0, 1] of them",
    )
    group.add_argument(
        "--limit-val-batches",
        type=_count_or_fraction,
        default=None,
        metavar="N|F",
        help="validate on N batches, or a fraction F in (0, 1] of them",
    )
    group.add_argument(
        "--log-every-n-steps",
        type=_positive_int,
        default=None,
        metavar="N",
        help="per-step values for loggers and trackers (the on_log hook) every N steps (default: 50)",
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="check the task: one batch each of training, validation and prediction; no files are kept",
    )
    # --no-X too: a resume takes the recorded run's settings, and may need to turn one off
    group.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model")
    group.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch's deterministic algorithms, seeded DataLoader workers",
    )


def _count_or_fraction(text: str) -> int | float:
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a batch count or a fraction in (0, 1], got {text!r}") from None
    if isinstance(value, int) and value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 batch, got {text!r}")
    if isinstance(value, float) and not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction must be in (0, 1], got {text!r} (an integer is a batch count)")
    return value


def _checked(text: str, convert: Callable[[str], _N], ok: Callable[[_N], bool], expected: str) -> _N:
    """``convert(text)`` if ``ok`` accepts it, else one argparse error saying what was expected.

    Not a number and a number out of range read the same (``expected a positive integer, got
    '0'``): the user needs what to type, not which check failed.
    """
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    return _checked(text, float, lambda v: v >= 0, "a non-negative number of seconds")  # NaN is not >= 0


def _path(text: str) -> Path:
    """A path argument; an empty one is refused (``Path("")`` is ``.``: files in the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return Path(text)


def _positive_int(text: str) -> int:
    return _checked(text, int, lambda v: v >= 1, "a positive integer")


NEVER = "never"
"""``--val-every-n-epochs never``: the Trainer's ``val_every_n_epochs=None``."""


def _positive_int_or_never(text: str) -> int | str:
    if text.strip().lower() == NEVER:
        return NEVER
    return _checked(text, int, lambda v: v >= 1, f"a positive integer or '{NEVER}'")


def _positive_float(text: str) -> float:
    return _checked(text, float, lambda v: v > 0 and v != float("inf"), "a positive number")


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (``trainhooks fit: error: argument --epochs:
    expected a positive integer, got '0'``) instead of the whole usage text before it: the
    mistake is what the user needs to see; ``--help`` has the rest. Exit status 2 as before.

    Abbreviated flags are not expanded (``allow_abbrev=False``): plugins add options, so an
    abbreviation that works today can become ambiguous, or start meaning another option, once
    a plugin is installed; and a resume must know which recorded settings were typed (see
    :mod:`trainhooks.cli.resume`). An unknown flag is answered with the ones it resembles.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.commands: dict[str, argparse.ArgumentParser] = {}
        """Subcommand name -> its parser (filled by :func:`build_parser`), for the suggestions."""

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            parser = self.commands.get(getattr(parsed, "command", None) or "", self)  # its prog, its flags
            parser.error(f"unrecognized arguments: {' '.join(unknown)}{_did_you_mean(parser, unknown)}")
        return parsed

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _did_you_mean(parser: argparse.ArgumentParser, unknown: Sequence[str]) -> str:
    """`` (did you mean --epochs?)`` for the first unknown flag that resembles known ones."""
    import difflib

    known = [flag for action in parser._actions for flag in action.option_strings]  # argparse has no public list
    for arg in unknown:
        if not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0]
        close = [f for f in known if f.startswith(name)] or difflib.get_close_matches(name, known, n=3, cutoff=0.7)
        if close:
            return f" (did you mean {' or '.join(close[:3])}?)"
    return ""


def build_parser(table: OptionTable | None = None) -> argparse.ArgumentParser:
    """The full parser; ``table`` adds plugin options to the run commands."""
    parser = Parser(
        prog="trainhooks",
        description="A PyTorch training engine whose every lifecycle event is a pluggy hook.",
    )
    parser.add_argument("--version", action="version", version=f"trainhooks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = _add_run_commands(sub, table)
    parser.commands.update(_add_listing_commands(sub))
    parser.commands["new-plugin"] = _add_new_plugin_command(sub)
    return parser


def _add_run_commands(sub: Any, table: OptionTable | None) -> dict[str, argparse.ArgumentParser]:
    """fit, validate, predict and export: a task, the plugin flags, and the plugins' options."""
    fit = sub.add_parser("fit", help="train a task (default: digits) with the default plugins")
    _add_task_flags(fit, training=True)
    _add_plugin_flag(fit)

    val = sub.add_parser("validate", help="evaluate saved weights on the task's validation data")
    _add_task_flags(val, training=False)
    _add_plugin_flag(val)

    pred = sub.add_parser("predict", help="predict with saved weights; writes predictions.csv")
    _add_task_flags(pred, training=False)
    _add_plugin_flag(pred)

    exp = sub.add_parser("export", help="export saved weights (torchscript, onnx, ...)")
    _add_task_flags(exp, training=False)
    exp.add_argument(
        "--format",
        default="torchscript",
        help="export format: torchscript, onnx, or any other a plugin provides (default: torchscript)",
    )
    exp.add_argument(
        "--output",
        type=_path,
        default=None,
        help="output file (default: next to the weights, STEM.<format>; with --save-dir: <save-dir>/weights/model.<format>)",
    )
    _add_plugin_flag(exp)

    commands = {"fit": fit, "validate": val, "predict": pred, "export": exp}
    if table is not None:
        for command in commands.values():
            table.add_to_argparse(command)
    return commands


def _add_listing_commands(sub: Any) -> dict[str, argparse.ArgumentParser]:
    """plugins and hooks: what is installed, and what can be implemented."""
    plugins = sub.add_parser("plugins", help="list installed plugins, their status, versions and hooks")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.add_argument("-v", "--verbose", action="store_true", help="also show each entry point's target")
    _add_plugin_flag(plugins)

    hooks = sub.add_parser("hooks", help="list every hook with its signature; --loop shows the call map")
    hooks.add_argument("--loop", action="store_true", help="the loop map: when each hook fires and which plugins run")
    hooks.add_argument("--markdown", action="store_true", help="the full hook reference as Markdown (docs/hooks.md)")
    _add_plugin_flag(hooks)
    return {"plugins": plugins, "hooks": hooks}


def _add_new_plugin_command(sub: Any) -> argparse.ArgumentParser:
    """new-plugin: the template's questions as flags."""
    new = sub.add_parser(
        "new-plugin",
        help="create a plugin package from the template (offline; needs cookiecutter)",
        description="Bake trainhooks' plugin template into NAME's own pip-installable package: "
        "pyproject.toml with the entry point, a module with example hooks, tests using the "
        "trainhooks_tester fixture, README, CI workflow, LICENSE. Nothing is asked unless --interactive.",
    )
    new.add_argument("name", help="the plugin's name: its entry-point name, as in `-p no:NAME` (e.g. 'hello')")
    new.add_argument(
        "--hooks",
        default=None,
        help="comma-separated hooks to start from (default: on_fit_epoch_end,should_stop); `trainhooks hooks` lists them",
    )
    new.add_argument("--module", dest="module_name", default=None, help="import name (default: trainhooks_NAME)")
    new.add_argument(
        "--dist", dest="project_slug", default=None, help="distribution and directory name (default: trainhooks-NAME)"
    )
    new.add_argument("--author", default=None, help="author name")
    new.add_argument("--email", default=None, help="author e-mail ('' for none)")
    new.add_argument("--description", default=None, help="one-line description")
    new.add_argument("--plugin-version", dest="plugin_version", default=None, help="first version (default: 0.1.0)")
    new.add_argument("--license", default=None, help="MIT (default), Apache-2.0 or BSD-3-Clause")
    new.add_argument(
        "-o", "--output-dir", type=_path, default=Path("."), help="where to create the package directory (default: .)"
    )
    asking = new.add_mutually_exclusive_group()
    asking.add_argument(
        "--interactive", action="store_true", help="ask cookiecutter's questions (the flags above become the defaults)"
    )
    asking.add_argument("--no-input", dest="interactive", action="store_false", help="ask nothing (the default)")
    return new
