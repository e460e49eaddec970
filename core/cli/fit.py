"""``trainhooks fit``: train a task with the enabled plugins."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from trainhooks.cli.render import _rank_label, format_profile
from trainhooks.cli.runs import _make_trainer
from trainhooks.plugin_manager import PluginManager


def _cmd_fit(args: argparse.Namespace, plugin_manager: PluginManager, plugin_options: dict[str, Any]) -> int:
    trainer, task = _make_trainer(args, plugin_manager, plugin_options, training=True)
    if task.train_data is None:
        from trainhooks.errors import TaskError

        raise TaskError(f"task {task.name!r} has no train_data")
    result = trainer.fit(task.train_data, task.val_data, resume=args.resume)
    if trainer.hook_profile is not None:
        print(format_profile(trainer))
    # The summary lines come from Trainer.fit itself (the same from Python).
    if trainer.interrupted:
        from trainhooks.signals import PREEMPT_EXIT_CODE, exit_code_for

        # The file the checkpoint plugin announced (trainer.log_artifact), not a path guessed here.
        last = trainer.artifacts.get("last.pt") or trainer.emergency_checkpoint
        torchrun = "TORCHELASTIC_RUN_ID" in os.environ
        if last is not None and Path(last).exists() and trainer.is_global_zero:
            if torchrun:  # a worker cannot see torchrun's own arguments
                print(
                    f"Resume with: the same torchrun command, with --resume {last} (or --resume auto)",
                    file=sys.stderr,
                )
            else:
                print(f"Resume with: {_resume_command(last)}", file=sys.stderr)
        code = exit_code_for(trainer.interrupted)
        if torchrun and (code != PREEMPT_EXIT_CODE or not trainer.is_global_zero):
            # A graceful stop is a clean exit for torchrun: it reports no failed worker (and does
            # not restart the group under --max-restarts). The pre-emption status is rank 0's
            # alone: a worker that exits non-zero makes the agent SIGTERM the others at once, and
            # rank 0 may still be writing last.pt or printing the resume hint. See
            # docs/fault-tolerance.md.
            return 0
        return code
    from trainhooks.outcome import nothing_usable

    unusable = nothing_usable(trainer, result)
    if unusable is not None:  # a scheduler or CI job must not take this for a finished run
        print(f"trainhooks: error: {_rank_label()}training produced nothing usable: {unusable}", file=sys.stderr)
        return 3
    return 0


def _resume_command(last: Path) -> str:
    """This very command line with ``--resume LAST`` (and without an earlier --resume)."""
    import shlex

    from trainhooks.cli.preparse import without_option

    kept = without_option(sys.argv[1:], "--resume")
    if not kept or kept[0] != "fit":
        kept = ["fit"]
    return shlex.join(["trainhooks", *kept, "--resume", str(last)])
