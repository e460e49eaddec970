"""``trainhooks-ray fit``: start ``trainhooks fit`` on a Ray Train ``TorchTrainer``.

::

    trainhooks-ray fit --workers 2 --max-failures 1 -- --epochs 5 --save-dir runs/ray -p early_stopping

Options before ``--`` are the launcher's; everything after it (or any option the launcher does
not know) goes to ``trainhooks fit`` in every worker, with ``-p ray`` and an absolute
``--save-dir`` added. The driver connects to a running Ray cluster when there is one
(``RAY_ADDRESS``, ``ray start``) and otherwise starts a local one. Exit codes: 0 finished, 1
failed (Ray gave up after ``--max-failures`` restarts), 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainhooks.rundir import increment_dir  # runs/train, runs/train2, ... as `trainhooks fit` picks them
from trainhooks_ray import CHECKPOINT_FILE, WORKER_ENV

_PASS_ENV_PREFIXES = ("TRAINHOOKS_", "MLFLOW_", "WANDB_")


def _take_option(args: list[str], flag: str) -> tuple[list[str], str | None]:
    """``args`` without ``flag VALUE`` / ``flag=VALUE``, and the (last) value."""
    kept: list[str] = []
    value: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
            i += 2
            continue
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
            i += 1
            continue
        kept.append(arg)
        i += 1
    return kept, value


def worker_argv(fit_args: Sequence[str], save_dir: Path) -> list[str]:
    """The ``trainhooks fit`` arguments every worker runs: the user's, ``-p ray``, an absolute save dir."""
    args, _ = _take_option(list(fit_args), "--save-dir")
    args += ["--save-dir", str(save_dir)]
    plugins = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-p", "--plugin")]
    if not any(name.strip() == "ray" for item in plugins for name in item.split(",")):
        args += ["-p", "ray"]
    return args


def _worker_loop(config: dict[str, Any]) -> None:
    """What every Ray Train worker runs: ``trainhooks fit``, resumed from Ray's checkpoint if any."""
    import ray.train

    from trainhooks import cli

    os.chdir(config["cwd"])
    os.environ[WORKER_ENV] = "1"
    argv = list(config["argv"])
    checkpoint = ray.train.get_checkpoint()
    staging = None
    if checkpoint is not None:
        # A restarted worker group: continue exactly where the last reported epoch ended.
        staging = tempfile.mkdtemp(prefix="trainhooks-ray-resume-")
        checkpoint.to_directory(staging)
        argv, _ = _take_option(argv, "--resume")
        argv += ["--resume", str(Path(staging) / CHECKPOINT_FILE)]
    elif _restarted(config["marker"]) and "--resume" not in argv:
        # Restarted before Ray held a checkpoint: continue from the save dir's own newest good
        # checkpoint (or start fresh), instead of being refused as a second run into a used dir.
        argv += ["--resume", "auto"]
    code = cli.main(["fit", *argv])
    if code != 0:
        rank = ray.train.get_context().get_world_rank()
        raise RuntimeError(f"rank {rank}: trainhooks fit {shlex.join(argv)} exited with code {code}")


def _restarted(marker: str) -> bool:
    """Whether this worker group is a restart: the first attempt's rank 0 leaves ``marker``."""
    import ray.train

    path = Path(marker)
    if path.exists():
        return True
    if ray.train.get_context().get_world_rank() == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return False


def run(
    fit_args: Sequence[str] = (),
    *,
    workers: int = 2,
    max_failures: int = 0,
    use_gpu: bool | None = None,
    storage: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Any:
    """Run ``trainhooks fit`` with ``fit_args`` on ``workers`` Ray Train workers; returns Ray's Result.

    :param max_failures: how many times Ray may restart the worker group after a failure
        (``FailureConfig(max_failures=...)``); each restart resumes from the newest checkpoint.
    :param use_gpu: one GPU per worker; default: when CUDA is available here.
    :param storage: Ray's storage path for checkpoints (default ``<save-dir>/ray``; on a
        multi-node cluster, a directory every node sees, or ``s3://...``).
    :raises trainhooks.ConfigError: a bad worker or failure count.
    """
    import trainhooks

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise trainhooks.ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < -1:
        raise trainhooks.ConfigError(f"--max-failures must be an integer >= 0 (or -1: no limit), got {max_failures!r}")
    args, given_dir = _take_option(list(fit_args), "--save-dir")
    if given_dir is not None and not given_dir.strip():
        raise trainhooks.ConfigError("--save-dir is empty")
    save_dir = (Path(given_dir) if given_dir else increment_dir(Path("runs") / "train")).resolve()
    argv = worker_argv(args, save_dir)

    marker = save_dir / "ray" / ".attempted"
    marker.unlink(missing_ok=True)  # a stale marker of an earlier launch is no restart

    import ray
    import torch
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if use_gpu is None:
        use_gpu = torch.cuda.is_available()
    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k.startswith(_PASS_ENV_PREFIXES)}
        # -p and --task modules in the current directory import in the workers too.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH", "")) if p)
        ray.init(
            num_cpus=None if os.environ.get("RAY_ADDRESS") else max(workers + 1, os.cpu_count() or 1),
            include_dashboard=False,
            runtime_env={"env_vars": env},
        )
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"argv": argv, "cwd": os.getcwd(), "marker": str(marker)},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(
            name=name or save_dir.name,
            storage_path=str(Path(storage).resolve()) if storage is not None else str(save_dir / "ray"),
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    )
    return trainer.fit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainhooks-ray",
        description="Run trainhooks fit on Ray Train's TorchTrainer (options after -- go to trainhooks fit).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fit = sub.add_parser("fit", help="train on Ray Train workers (every worker runs trainhooks fit ... -p ray)")
    fit.add_argument("--workers", type=int, default=2, help="Ray Train workers (processes) (default: 2)")
    fit.add_argument(
        "--max-failures", type=int, default=0, help="worker-group restarts Ray may make, each resuming (default: 0)"
    )
    device = fit.add_mutually_exclusive_group()
    device.add_argument("--gpu", dest="use_gpu", action="store_true", default=None, help="one GPU per worker")
    device.add_argument("--cpu", dest="use_gpu", action="store_false", help="CPU workers even where CUDA exists")
    fit.add_argument("--storage", default=None, help="Ray storage path for checkpoints (default: <save-dir>/ray)")
    fit.add_argument("--name", dest="ray_name", default=None, help="Ray run name (default: the save dir's name)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import trainhooks

    args_in = list(sys.argv[1:] if argv is None else argv)
    fit_args: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, fit_args = args_in[:cut], args_in[cut + 1 :]
    args, unknown = build_parser().parse_known_args(args_in)
    try:
        result = run(
            [*unknown, *fit_args],
            workers=args.workers,
            max_failures=args.max_failures,
            use_gpu=args.use_gpu,
            storage=args.storage,
            name=args.ray_name,
        )
    except trainhooks.ConfigError as exc:
        print(f"trainhooks-ray: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # Ray's TrainingFailedError and friends: the run failed
        print(f"trainhooks-ray: training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"trainhooks-ray: finished; metrics {result.metrics}; checkpoint {result.checkpoint}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
