"""The ``trainhooks`` command: fit, validate, predict, export, plugins, hooks, new-plugin.

Plugin options join the command line of ``fit``/``validate``/``predict``/``export``: the
``-p`` flags are read first, plugins are loaded, their ``add_options`` hooks run, and only then
is the full parser built, so ``trainhooks fit --help`` shows every installed plugin's options.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainhooks import __version__
from trainhooks.errors import HookError, TrainhooksError
from trainhooks.host import PluginHost

if TYPE_CHECKING:
    from trainhooks.options import OptionTable
    from trainhooks.trainer import FitResult, Trainer

RUN_COMMANDS = ("fit", "validate", "predict", "export")


def scan_plugin_flags(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``-p NAME`` / ``-p no:NAME`` (also ``-pNAME``, ``--plugin NAME``) → (enable, disable)."""
    values: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--":
            break
        if arg in ("-p", "--plugin"):
            value = next(it, None)
            if value is not None:
                values.append(value)
        elif arg.startswith("--plugin="):
            values.append(arg.split("=", 1)[1])
        elif arg.startswith("-p") and not arg.startswith("--") and len(arg) > 2:
            values.append(arg[2:])
    return split_plugin_values(values)


def split_plugin_values(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """``["a", "no:b"]`` → (["a"], ["b"])."""
    enable = [v for v in values if not v.startswith("no:")]
    disable = [v[3:] for v in values if v.startswith("no:")]
    return enable, disable


def _command_of(argv: Sequence[str]) -> str | None:
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-p", "--plugin"):
            skip = True
            continue
        if not arg.startswith("-"):
            return arg
    return None


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
        type=Path,
        default=None,
        help="output directory (default: runs/train for fit, like Trainer; runs/<command> otherwise; numbered)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    if training:
        parser.add_argument("--epochs", type=_positive_int, default=None, help="maximum epochs (default: 10)")
        parser.add_argument("--lr", type=_positive_float, default=None, help="learning rate passed to the task")
        parser.add_argument("--name", default=None, help="run name (default: the save_dir's name)")
        parser.add_argument(
            "--resume", type=Path, default=None, metavar="CHECKPOINT", help="continue from a checkpoint"
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
        parser.add_argument(
            "--dist-sync-every",
            type=_positive_int,
            default=1,
            metavar="N",
            help="under torchrun: agree on stop requests every N batches (default: 1)",
        )
    else:
        parser.add_argument(
            "--weights", type=Path, required=True, help="checkpoint (last.pt/best.pt) or state_dict file"
        )


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser(table: OptionTable | None = None) -> argparse.ArgumentParser:
    """The full parser; ``table`` adds plugin options to the run commands."""
    parser = argparse.ArgumentParser(
        prog="trainhooks",
        description="A PyTorch training engine whose every lifecycle event is a pluggy hook.",
    )
    parser.add_argument("--version", action="version", version=f"trainhooks {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
        "--output", type=Path, default=None, help="output file (default: <save-dir>/weights/model.<format>)"
    )
    _add_plugin_flag(exp)

    if table is not None:
        for command in (fit, val, pred, exp):
            table.add_to_argparse(command)

    plugins = sub.add_parser("plugins", help="list installed plugins, their status, versions and hooks")
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.add_argument("-v", "--verbose", action="store_true", help="also show each entry point's target")
    _add_plugin_flag(plugins)

    hooks = sub.add_parser("hooks", help="list every hook with its signature; --loop shows the call map")
    hooks.add_argument("--loop", action="store_true", help="the loop map: when each hook fires and which plugins run")
    hooks.add_argument("--markdown", action="store_true", help="the full hook reference as Markdown (docs/hooks.md)")
    _add_plugin_flag(hooks)

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
        "-o", "--output-dir", type=Path, default=Path("."), help="where to create the package directory (default: .)"
    )
    asking = new.add_mutually_exclusive_group()
    asking.add_argument(
        "--interactive", action="store_true", help="ask cookiecutter's questions (the flags above become the defaults)"
    )
    asking.add_argument("--no-input", dest="interactive", action="store_false", help="ask nothing (the default)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``trainhooks`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    handler = _log_to_stderr()
    saved_filters = warnings.filters[:]
    if not _is_rank_zero():
        from trainhooks.host import PluginDisabledWarning

        warnings.simplefilter("ignore")
        warnings.simplefilter("default", PluginDisabledWarning)
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
    than 0 show errors only (engine log records of level ERROR, and no Python warnings except
    a plugin being disabled, which may happen on one rank alone).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING if _is_rank_zero() else logging.ERROR)
    handler.setFormatter(logging.Formatter("trainhooks: %(message)s"))
    logging.getLogger("trainhooks").addHandler(handler)
    return handler


def _is_rank_zero() -> bool:
    world, rank = os.environ.get("WORLD_SIZE", "1"), os.environ.get("RANK", "0")
    return not (world.isdigit() and int(world) > 1 and rank.isdigit() and int(rank) > 0)


def _rank_label() -> str:
    """``rank 1 of 2: `` under torchrun, so each worker's error line says which process failed."""
    world, rank = os.environ.get("WORLD_SIZE", "1"), os.environ.get("RANK", "0")
    return f"rank {rank} of {world}: " if world.isdigit() and int(world) > 1 else ""


def _main(argv: list[str]) -> int:
    command = _command_of(argv)
    host: PluginHost | None = None
    table: OptionTable | None = None
    if command in RUN_COMMANDS:
        from trainhooks.options import CORE_OPTIONS, collect_options

        enable, disable = scan_plugin_flags(argv)
        host = PluginHost()
        host.load_plugins(enable=enable, disable=disable)
        table = collect_options(host, reserved=CORE_OPTIONS)
    parser = build_parser(table)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "plugins":
        return _cmd_plugins(args)
    if args.command == "hooks":
        return _cmd_hooks(args)
    if args.command == "new-plugin":
        return _cmd_new_plugin(args)
    assert host is not None and table is not None
    plugin_options = {dest: getattr(args, dest) for dest in table.specs if hasattr(args, dest)}
    handler = {"fit": _cmd_fit, "validate": _cmd_validate, "predict": _cmd_predict, "export": _cmd_export}
    return handler[args.command](args, host, plugin_options)


def _make_trainer(
    args: argparse.Namespace, host: PluginHost, plugin_options: dict[str, Any], *, training: bool
) -> tuple[Trainer, Any]:
    from trainhooks.tasks import load_task
    from trainhooks.trainer import Trainer, _increment_dir

    params: dict[str, Any] = {"batch_size": args.batch_size, "seed": args.seed}
    if training:
        params.update(lr=args.lr, epochs=args.epochs)
    task = load_task(args.task, **params)
    # fit writes where the Trainer API does (runs/train, runs/train2, ...), so the docs' paths hold.
    run_dir = "train" if args.command == "fit" else args.command
    resume = getattr(args, "resume", None)
    if args.save_dir is None and training and resume is not None and Path(resume).parent.name == "weights":
        # --resume runs/train/weights/last.pt continues in runs/train: one metrics.csv, one run.
        save_dir = Path(resume).parent.parent
    else:
        save_dir = args.save_dir or _increment_dir(Path("runs") / run_dir)
    trainer = Trainer(
        task.model,
        loss_fn=task.loss_fn,
        optimizer=task.optimizer,
        lr_scheduler=task.lr_scheduler,
        epochs=(args.epochs or 10) if training else 1,
        device=args.device,
        save_dir=save_dir,
        seed=args.seed,
        name=getattr(args, "name", None),
        options=plugin_options,
        plugin_host=host,
        profile_hooks=getattr(args, "profile_hooks", False),
        verbose=not args.quiet,
        non_critical=[n.strip() for item in getattr(args, "non_critical", []) for n in item.split(",") if n.strip()],
        **_distributed_args(args),
    )
    if task.example_input is not None:
        trainer.example_input = task.example_input
    if not training:
        from trainhooks.checkpointing import load_weights

        state = load_weights(args.weights)
        try:
            trainer.unwrapped_model.load_state_dict(state)
        except RuntimeError as exc:
            from trainhooks.errors import CheckpointError

            first = str(exc).splitlines()[0]
            raise CheckpointError(f"weights {args.weights} do not fit the task's model: {first}") from exc
    return trainer, task


def _distributed_args(args: argparse.Namespace) -> dict[str, Any]:
    """Trainer keywords from ``--precision``, ``--dist-timeout``, ``--dist-sync-every`` (fit only)."""
    given = {
        "precision": getattr(args, "precision", None),
        "dist_timeout": getattr(args, "dist_timeout", None),
        "dist_sync_every": getattr(args, "dist_sync_every", None),
        "stop_timeout": getattr(args, "stop_timeout", None),
        "preempt_signal": getattr(args, "preempt_signal", None),
        "overwrite": getattr(args, "overwrite", None) or None,
    }
    return {k: v for k, v in given.items() if v is not None}


def _cmd_fit(args: argparse.Namespace, host: PluginHost, plugin_options: dict[str, Any]) -> int:
    trainer, task = _make_trainer(args, host, plugin_options, training=True)
    if task.train_data is None:
        from trainhooks.errors import TaskError

        raise TaskError(f"task {task.name!r} has no train_data")
    result = trainer.fit(task.train_data, task.val_data, resume=args.resume)
    if trainer.hook_profile is not None:
        print(format_profile(trainer))
    if not args.quiet and trainer.is_global_zero:  # one summary under torchrun
        print(summary_line(result, trainer.epochs))
    if trainer.interrupted:
        from trainhooks.signals import PREEMPT_EXIT_CODE, exit_code_for

        last = trainer.save_dir / "weights" / "last.pt"
        torchrun = "TORCHELASTIC_RUN_ID" in os.environ
        if last.exists() and trainer.is_global_zero:
            if torchrun:  # this process cannot see torchrun's own arguments
                print(
                    f"Resume with: the same torchrun command, with --resume {last} (or --resume auto)",
                    file=sys.stderr,
                )
            else:
                print(f"Resume with: {_resume_command(last)}", file=sys.stderr)
        code = exit_code_for(trainer.interrupted)
        if torchrun and code != PREEMPT_EXIT_CODE:
            # A graceful stop is a clean exit to torchrun: it reports no failed worker (and does
            # not restart the group under --max-restarts). See docs/fault-tolerance.md.
            return 0
        return code
    return 0


def _resume_command(last: Path) -> str:
    """This very command line with ``--resume LAST`` (and without an earlier --resume)."""
    import shlex

    argv, kept, skip = sys.argv[1:], [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--resume":
            skip = True
            continue
        if arg.startswith("--resume="):
            continue
        kept.append(arg)
    if not kept or kept[0] != "fit":
        kept = ["fit"]
    return shlex.join(["trainhooks", *kept, "--resume", str(last)])


def summary_line(result: FitResult, epochs: int | None = None) -> str:
    """The last line of ``trainhooks fit``: why training stopped and where everything went."""
    what = "stopped early" if result.stopped_early else "finished"
    of = f" of {epochs}" if epochs else ""
    by = f" [{result.stopped_by}]" if result.stopped_by else ""
    head = (
        f"Training {what} after {result.epochs_completed}{of} epochs "
        f"({result.global_step} steps, {result.duration_s:.1f}s): {result.stop_reason}{by}."
    )
    files = []
    for path in result.artifacts.values():
        try:
            files.append(str(path.relative_to(result.save_dir)))
        except ValueError:
            files.append(str(path))
    where = (
        f" Results in {result.save_dir}/: {', '.join(files)}" if files else f" Nothing was saved to {result.save_dir}."
    )
    return head + where


def format_profile(trainer: Trainer) -> str:
    """The ``--profile-hooks`` table: time per plugin per hook, slowest first."""
    profile = trainer.hook_profile
    rows = profile.rows() if profile is not None else []
    # Under torchrun every rank profiles its own hooks (rank-zero-only plugins run on rank 0
    # only): each table says whose it is.
    whose = f" on rank {trainer.rank} of {trainer.world_size}" if trainer.world_size > 1 else ""
    lines = [
        f"Hook profile{whose} (time inside plugin hooks):",
        f"{'plugin':<24} {'hook':<28} {'calls':>8} {'total ms':>10} {'mean us':>9}",
    ]
    for s in rows:
        lines.append(f"{s.plugin:<24} {s.hook:<28} {s.calls:>8} {s.total_ns / 1e6:>10.2f} {s.mean_us:>9.1f}")
    if not rows:
        lines.append("(no plugin hooks ran)")
    return "\n".join(lines)


def _cmd_validate(args: argparse.Namespace, host: PluginHost, plugin_options: dict[str, Any]) -> int:
    trainer, task = _make_trainer(args, host, plugin_options, training=False)
    if task.val_data is None:
        from trainhooks.errors import TaskError

        raise TaskError(f"task {task.name!r} has no val_data to validate on")
    metrics = trainer.validate(task.val_data)
    print("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "no metrics")
    return 0


def _cmd_predict(args: argparse.Namespace, host: PluginHost, plugin_options: dict[str, Any]) -> int:
    import torch

    trainer, task = _make_trainer(args, host, plugin_options, training=False)
    data = task.predict_data if task.predict_data is not None else task.val_data
    if data is None:
        from trainhooks.errors import TaskError

        raise TaskError(f"task {task.name!r} has no predict_data (or val_data) to predict on")
    preds = trainer.predict(data)
    trainer.save_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(preds, torch.Tensor) and preds.dim() == 2:
        probs = preds.float().softmax(dim=1)
        conf, label = probs.max(dim=1)
        out = trainer.save_dir / "predictions.csv"
        with out.open("w", encoding="utf-8") as fh:
            fh.write("index,prediction,confidence\n")
            for i, (lab, c) in enumerate(zip(label.tolist(), conf.tolist())):
                fh.write(f"{i},{lab},{c:.6f}\n")
    else:
        out = trainer.save_dir / "predictions.pt"
        torch.save(preds, out)
    count = len(preds) if hasattr(preds, "__len__") else 0
    print(f"{count} predictions written to {out}")
    return 0


def _cmd_export(args: argparse.Namespace, host: PluginHost, plugin_options: dict[str, Any]) -> int:
    trainer, task = _make_trainer(args, host, plugin_options, training=False)
    if trainer.example_input is None:
        # A task without example_input: trace with the first batch of its own data.
        for data in (task.predict_data, task.val_data, task.train_data):
            if data is not None:
                trainer._capture_example(next(iter(data), None))
                if trainer.example_input is not None:
                    break
    if trainer.example_input is None:
        from trainhooks.errors import TaskError

        raise TaskError(
            f"export needs an example input to trace the model: the task {args.task!r} has none and no data "
            "to take one from; return Task(..., example_input=a_batch_of_inputs) from it"
        )
    path = trainer.export(args.format, args.output)
    print(f"exported {args.format} model to {path}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    enable, disable = split_plugin_values(args.plugin)
    host = PluginHost()
    host.load_plugins(enable=enable, disable=disable, strict=False)
    from trainhooks.options import CORE_OPTIONS, check_options

    check_options(host, reserved=CORE_OPTIONS)
    records = list(host.records.values())
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


def _cmd_hooks(args: argparse.Namespace) -> int:
    from trainhooks import loopmap

    if args.loop:
        enable, disable = split_plugin_values(args.plugin)
        host = PluginHost()
        host.load_plugins(enable=enable, disable=disable, strict=False)
        print(loopmap.render(host))
        return 0
    if args.markdown:
        print(hook_reference_markdown(), end="")
        return 0
    host = PluginHost()
    for name in host.spec_names:
        caller = getattr(host.hook, name)
        spec = caller.spec
        flags = [flag for flag in ("firstresult", "historic") if spec.opts.get(flag)]
        doc = (inspect.getdoc(spec.function) or "").replace("``", "")
        first = doc.splitlines()[0] if doc else ""
        tag = f"  [{', '.join(flags)}]" if flags else ""
        print(f"{name}({', '.join(spec.argnames)}){tag}")
        print(f"    {first}")
    return 0


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


def hook_reference_markdown() -> str:
    """docs/hooks.md: the loop map and every hookspec's signature and docstring."""
    from trainhooks import hookspecs, loopmap

    host = PluginHost()
    out = [
        "# Hook reference",
        "",
        "Generated by `trainhooks hooks --markdown`; a test keeps it in sync with the hookspecs.",
        "Implement any subset of a hook's arguments, by name. `trainhooks hooks --loop` prints the",
        "map below with the plugins installed on your machine.",
        "",
        "## When hooks fire",
        "",
        "```text",
        loopmap.render(),
        "```",
        "",
    ]
    for module in hookspecs.SPEC_MODULES:
        title = (inspect.getdoc(module) or module.__name__).splitlines()[0]
        out += [f"## {title}", ""]
        names = [n for n in host.spec_names if getattr(module, n, None) is not None]
        for name in names:
            spec = getattr(host.hook, name).spec
            flags = [flag for flag in ("firstresult", "historic") if spec.opts.get(flag)]
            tag = f" *({', '.join(flags)})*" if flags else ""
            out += [f"### `{name}({', '.join(spec.argnames)})`{tag}", "", inspect.getdoc(spec.function) or "", ""]
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
