"""Shared rendering: the summary line, the hook profile table, the hook reference, rank labels."""

from __future__ import annotations

import inspect
import os
import textwrap
from typing import TYPE_CHECKING

from trainhooks.plugin_manager import PluginManager

if TYPE_CHECKING:
    from trainhooks.trainer import FitResult, Trainer


def _rank_label() -> str:
    """``rank 1 of 2: `` under torchrun, so each worker's error line says which process failed."""
    world, rank = os.environ.get("WORLD_SIZE", "1"), os.environ.get("RANK", "0")
    return f"rank {rank} of {world}: " if world.isdigit() and int(world) > 1 else ""


def _is_rank_zero() -> bool:
    """False on torchrun's workers of rank > 0 (which print errors, not warnings)."""
    world, rank = os.environ.get("WORLD_SIZE", "1"), os.environ.get("RANK", "0")
    return not (world.isdigit() and int(world) > 1 and rank.isdigit() and int(rank) > 0)


WIDTH = 80
"""Lines the final summary prints stay within this many columns (terminals wrap longer ones)."""


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``2 epochs``, ``0 steps``."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def summary_line(
    result: FitResult,
    epochs: int | None = None,
    *,
    cut_short: tuple[int, int | None] | None = None,
    width: int = WIDTH,
) -> str:
    """The last lines of ``trainhooks fit``: how training ended and where everything went.

    ::

        Training finished after 10 of 10 epochs (450 steps, 12.3s).
        Results in runs/train3/:
          metrics.csv, weights/last.pt, weights/best.pt, results.png

    A stop adds its reason and the plugin that asked (on a line of its own when the first would
    not fit in ``width``); a run that completed its epochs says so once, not twice. The file
    list always has its own line(s), wrapped at ``width``, so nothing wraps at 80 columns.

    :param cut_short: (batches done, batches per epoch) when the last epoch ended early.
    """
    what = "stopped early" if result.stopped_early else "finished"
    of = f" of {epochs:,}" if epochs else ""
    if cut_short is not None:  # the last epoch in history ended before its last batch
        done, total = cut_short
        where = f"in epoch {result.epochs_completed:,}{of} at batch {done:,}" + (f" of {total:,}" if total else "")
    else:
        where = (
            f"after {result.epochs_completed:,}{of} {'epoch' if (epochs or result.epochs_completed) == 1 else 'epochs'}"
        )
    numbers = f"({plural(result.global_step, 'step')}, {result.duration_s:.1f}s)"
    head = f"Training {what} {where} {numbers}"
    lines = [head + "."]
    if result.stopped_early:
        by = f" [{result.stopped_by}]" if result.stopped_by else ""
        reason = f"{result.stop_reason}{by}."
        one = f"{head}: {reason}"
        if len(one) <= width:
            lines = [one]
        else:
            wrapped = textwrap.wrap(reason, width, initial_indent="  ", subsequent_indent="  ")
            lines = (
                [head + ":", *wrapped] if len(head) < width else [f"Training {what} {where}", f"  {numbers}:", *wrapped]
            )
    elif len(head) >= width:
        lines = [f"Training {what} {where}", f"  {numbers}."]
    files = []
    for path in result.artifacts.values():
        try:
            files.append(str(path.relative_to(result.save_dir)))
        except ValueError:
            files.append(str(path))
    if files:
        lines.append(f"Results in {result.save_dir}/:")
        lines += textwrap.wrap(
            ", ".join(files),
            width,
            initial_indent="  ",
            subsequent_indent="  ",
            break_on_hyphens=False,
            break_long_words=False,
        )
    else:
        lines.append(f"Nothing was saved to {result.save_dir}.")
    return "\n".join(lines)


def duration(ns: float) -> str:
    """``950 ns``, ``12.3 µs``, ``4.56 ms``, ``1.71 s``: three significant digits, a unit that fits."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            value = ns / scale
            return f"{value:.3g} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    return f"{ns:.0f} ns"


def format_profile(trainer: Trainer) -> str:
    """The ``--profile-hooks`` table: time per plugin per hook, slowest first.

    Times are printed in the unit that reads best (``1.71 s``, not ``1713489.1 us``).
    """
    profile = trainer.hook_profile
    rows = profile.rows() if profile is not None else []
    # Under torchrun every rank profiles its own hooks (rank-zero-only plugins run on rank 0
    # only): each table says whose it is.
    whose = f" on rank {trainer.rank} of {trainer.world_size}" if trainer.world_size > 1 else ""
    lines = [
        f"Hook profile{whose} (time inside plugin hooks):",
        f"{'plugin':<24} {'hook':<28} {'calls':>8} {'total':>10} {'mean':>10}",
    ]
    for s in rows:
        total = duration(s.total_ns)
        mean = duration(s.total_ns / s.calls) if s.calls else "-"
        lines.append(f"{s.plugin:<24} {s.hook:<28} {s.calls:>8} {total:>10} {mean:>10}")
    if not rows:
        lines.append("(no plugin hooks ran)")
    return "\n".join(lines)


def hook_reference_markdown() -> str:
    """docs/hooks.md: the loop map and every hookspec's signature and docstring."""
    from trainhooks import hookspecs, loopmap

    plugin_manager = PluginManager()
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
        names = [n for n in plugin_manager.spec_names if getattr(module, n, None) is not None]
        for name in names:
            spec = getattr(plugin_manager.hook, name).spec
            flags = [flag for flag in ("firstresult", "historic") if spec.opts.get(flag)]
            tag = f" *({', '.join(flags)})*" if flags else ""
            out += [f"### `{name}({', '.join(spec.argnames)})`{tag}", "", inspect.getdoc(spec.function) or "", ""]
    from trainhooks.vocabulary import vocabulary_markdown

    out += vocabulary_markdown()
    return "\n".join(out)
