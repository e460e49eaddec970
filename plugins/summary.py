"""``summary``: two lines at the start of ``fit`` saying what is about to be trained, how, and where to.

Default on; silent under ``--quiet`` (``Trainer(verbose=False)``) and on every rank but zero::

    Model Sequential: 1,210 parameters (all trainable), 4.7 KiB | data: 1,437 train, 360 val samples | cpu, precision 32
    Plugins: checkpoint, csv, lr, nan_guard, onnx, plot, progress, summary, torchscript | save dir: runs/train

It prints in ``on_train_start``, after a resume and after the distributed set-up, so the
device, the data sizes (samples per epoch, this rank's share under torchrun; batches for data
that does not say its samples), the plugin list and the save dir (``runs/train2`` when the
default is taken) are the ones the run uses. Counting parameters reads no tensor values: no
device sync.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any, TextIO

import trainhooks

PRECISION_NAMES = {"32": "precision 32", "bf16": "precision bf16-mixed", "16": "precision 16-mixed"}


def count(n: int) -> str:
    """``1,210``; ``11.7M``, ``1.2B`` from a million up (the magnitude is what matters there)."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f}B"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    return f"{n:,}"


def size(nbytes: int) -> str:
    """``4.7 KiB``, ``44.7 MiB``: binary units, one decimal."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def model_line(model: Any) -> str:
    """``Model Sequential: 1,210 parameters (all trainable), 4.7 KiB``."""
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    nbytes = sum(t.numel() * t.element_size() for t in [*params, *model.buffers()])
    which = "all trainable" if trainable == total else f"{count(trainable)} trainable"
    noun = "parameter" if total == 1 else "parameters"
    return f"Model {type(model).__name__}: {count(total)} {noun} ({which}), {size(nbytes)}"


def data_line(
    train_batches: int | None,
    val_batches: int | None,
    train_samples: int | None = None,
    val_samples: int | None = None,
) -> str:
    """``data: 1,437 train, 360 val samples``; in batches for data that does not say its samples.

    Samples are what a reader compares across runs and papers (batches change with the batch
    size). A split whose data has no sampler or dataset with a length (a list of batches, a
    generator) is given in batches, with the unit written out: ``data: 1,437 train samples, 12
    val batches``; ``?`` is an iterable without any length.
    """

    def noun(n: int | None, unit: str) -> str:
        return unit if n == 1 else {"batch": "batches", "sample": "samples"}[unit]

    parts = [
        (name, *((samples, "sample") if samples is not None else (batches, "batch")))
        for name, batches, samples in (("train", train_batches, train_samples), ("val", val_batches, val_samples))
        if name == "train" or val_batches is not None or val_samples is not None
    ]
    shown = ["?" if n is None else f"{n:,}" for _, n, _ in parts]
    if len({unit for *_, unit in parts}) == 1:  # one unit: said once, after the last split
        text = ", ".join(f"{value} {name}" for value, (name, _, _) in zip(shown, parts))
        return f"data: {text} {noun(parts[-1][1], parts[-1][2])}"
    return "data: " + ", ".join(f"{value} {name} {noun(n, unit)}" for value, (name, n, unit) in zip(shown, parts))


def save_dir_text(trainer: trainhooks.Trainer) -> str:
    """Where the run writes: relative to the working directory when inside it (``runs/train2``),
    else the full path; a dry run keeps nothing."""
    if getattr(trainer, "dry_run", False):
        return "none kept (dry run)"
    path = Path(trainer.save_dir)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def summary_lines(trainer: trainhooks.Trainer, width: int = 120) -> list[str]:
    """The lines :class:`Summary` prints; each fits in ``width`` columns (plugin names wrap)."""
    precision = PRECISION_NAMES.get(str(trainer.precision), f"precision {trainer.precision}")
    device = str(trainer.device)
    if trainer.world_size > 1:
        device = f"{device}, {trainer.world_size} processes"
    compiled = trainer.compile_arguments
    if compiled is not None:  # the first batches are slow while torch.compile works: say why
        backend = compiled.get("backend")
        precision += f", torch.compile ({backend})" if isinstance(backend, str) else ", torch.compile"
    first = " | ".join(
        [
            model_line(trainer.unwrapped_model),
            data_line(
                trainer.num_train_batches,
                trainer.num_val_batches,
                getattr(trainer, "num_train_samples", None),
                getattr(trainer, "num_val_samples", None),
            ),
            f"{device}, {precision}",
        ]
    )
    lines = [first] if len(first) <= width else [first.split(" | ", 1)[0], "  " + first.split(" | ", 1)[1]]
    active = trainer.plugin_manager.active()
    plugins = sorted(r.name for r in active if r.source != "callback")
    callbacks = [r.name for r in active if r.source == "callback"]
    text = "Plugins: " + (", ".join(plugins) or "none")
    if callbacks:
        text += f"; callbacks: {', '.join(callbacks)}"
    lines += textwrap.wrap(text, width=width, subsequent_indent="  ", break_on_hyphens=False)
    where = f"save dir: {save_dir_text(trainer)}"  # kept whole: a path is copied from here
    if len(lines[-1]) + 3 + len(where) <= width:
        lines[-1] += " | " + where
    else:
        lines.append("  " + where)
    return lines


class Summary(trainhooks.Callback):
    """Print the model, data, device, precision and active plugins when training starts."""

    rank_zero_only = True

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        if not trainer.verbose:
            return
        out = self.stream or sys.stdout
        print("\n".join(summary_lines(trainer)), file=out, flush=True)


__all__ = ["Summary", "count", "data_line", "model_line", "save_dir_text", "size", "summary_lines"]
