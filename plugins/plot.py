"""``plot``: ``save_dir/results.png`` with every metric's curve per epoch, train next to val.

Default on. Written at the end of training (also when it ends in an exception, so a crashed run
still has its picture), with matplotlib's non-interactive Agg backend, at 150 dpi.

* Panels: the losses first, then the other metrics, then the learning rate. Metrics are grouped
  by their name after the ``train/``/``val/`` prefix: ``train/loss`` and ``val/loss`` share the
  "loss" panel, ``val/acc`` gets an "acc" panel; ``lr`` and ``lr/pg0``, ``lr/pg1``... share "lr".
* The best epoch is marked in every panel (a dotted vertical line, named in the title): best by
  the metric ``best.pt`` is chosen by (the checkpoint plugin's monitor), else ``val/loss``, else
  ``train/loss``.
* A constant series (a constant learning rate) is drawn as a flat line in the middle of its
  panel, not auto-zoomed until rounding noise looks like data.
* The title is the task and the run: ``digits · run train3`` (``trainer.task_name`` when the
  trainer was made for a task, as ``trainhooks fit`` does; ``trainer.name`` is the run).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import trainhooks
from trainhooks.monitor import infer_mode

DPI = 150


def panel_of(key: str) -> str:
    """``train/loss`` → ``loss``; ``lr/pg1`` → ``lr``; ``val/top1`` → ``top1``; ``foo/bar/x`` → itself."""
    if key == "lr" or key.startswith("lr/"):
        return "lr"
    prefix, _, leaf = key.rpartition("/")
    return leaf if prefix in ("train", "val", "") else key


def _rank(panel: str) -> int:
    if panel == "lr":
        return 2
    return 0 if "loss" in panel else 1


def group_metrics(history: list[dict[str, float]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{panel: {series: [(epoch (1-based), value), ...]}}: losses, then metrics, then lr."""
    panels: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for i, row in enumerate(history):
        for key, value in row.items():
            panels.setdefault(panel_of(key), {}).setdefault(key, []).append((i + 1, float(value)))
    order = sorted(panels, key=lambda p: (_rank(p), list(panels).index(p)))  # stable within a rank
    return {p: panels[p] for p in order}


def best_epoch(history: list[dict[str, float]], metric: str, mode: str = "auto") -> int | None:
    """The 1-based epoch with the best finite ``metric`` (the first of equals), or None."""
    mode = infer_mode(metric, mode)
    values = [(i + 1, float(row[metric])) for i, row in enumerate(history) if metric in row]
    values = [(e, v) for e, v in values if math.isfinite(v)]
    if not values:
        return None
    pick = min if mode == "min" else max
    return pick(values, key=lambda ev: ev[1])[0]


def plot_history(
    history: list[dict[str, float]],
    path: Path,
    title: str = "",
    best: tuple[str, str] | None = None,
) -> Path:
    """Draw ``history`` to ``path``; ``best`` = (metric, mode) marks that metric's best epoch."""
    import matplotlib.pyplot as plt

    fig = draw(history, title, best)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def draw(history: list[dict[str, float]], title: str = "", best: tuple[str, str] | None = None) -> Any:
    """The figure :func:`plot_history` saves (a matplotlib ``Figure``; close it when done)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = group_metrics(history)
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    marked = best_epoch(history, *best) if best is not None else None
    for ax, (panel, series) in zip(axes.flat, panels.items()):
        flat: list[float] = []
        for name, points in series.items():
            xs, ys = zip(*points)
            style = "--" if name.startswith("val/") else "-"
            ax.plot(xs, ys, style, marker="o", markersize=3, label=name)
            flat.extend(y for y in ys if math.isfinite(y))
        if flat and max(flat) == min(flat):
            # A constant: a flat line in the middle, with a plain tick label (no offset).
            value = flat[0]
            pad = abs(value) if value else 1.0
            ax.set_ylim(value - pad, value + pad)
        ax.ticklabel_format(axis="y", useOffset=False)
        if marked is not None:
            ax.axvline(marked, color="grey", linestyle=":", linewidth=1.2, label=f"best (epoch {marked})")
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    heading = title
    if marked is not None and best is not None:
        value = history[marked - 1][best[0]]
        heading = f"{title}  (best {best[0]} {value:.4g} at epoch {marked})".strip()
    if heading:
        fig.suptitle(heading)
    fig.tight_layout()
    return fig


def plot_title(trainer: trainhooks.Trainer) -> str:
    """``digits · run train3``; ``run train3`` when no task is known."""
    task = getattr(trainer, "task_name", None)
    run = f"run {trainer.name}"
    return f"{task} · {run}" if task else run


def best_metric(trainer: trainhooks.Trainer) -> tuple[str, str] | None:
    """(metric, mode) for the best-epoch mark: the checkpoint's monitor, else val/loss, train/loss."""
    history = trainer.history
    from trainhooks.plugins.checkpoint import ModelCheckpoint

    checkpoints = [r.plugin for r in trainer.plugin_manager.active() if isinstance(r.plugin, ModelCheckpoint)]
    monitor = checkpoints[0].monitor if checkpoints else None
    candidates: list[tuple[str, str]] = []
    if isinstance(getattr(monitor, "metric", None), str):
        candidates.append((monitor.metric, monitor.mode))  # type: ignore[union-attr]
    candidates += [("val/loss", "min"), ("train/loss", "min")]
    for metric, mode in candidates:
        if any(metric in row for row in history):
            return metric, mode
    return None


class PlotResults(trainhooks.Callback):
    """Write ``results.png`` at the end of training."""

    rank_zero_only = True

    def __init__(self, filename: str = "results.png") -> None:
        self.filename = filename

    def _write(self, trainer: trainhooks.Trainer) -> None:
        if trainer.history:
            path = plot_history(
                trainer.history,
                trainer.save_dir / self.filename,
                title=plot_title(trainer),
                best=best_metric(trainer),
            )
            trainer.log_artifact("results.png", path)

    def on_train_end(self, trainer: trainhooks.Trainer) -> None:
        self._write(trainer)

    def on_exception(self, trainer: trainhooks.Trainer, exception: BaseException) -> None:
        if trainer.stage == "fit":
            self._write(trainer)


__all__ = [
    "DPI",
    "PlotResults",
    "best_epoch",
    "best_metric",
    "draw",
    "group_metrics",
    "panel_of",
    "plot_history",
    "plot_title",
]
