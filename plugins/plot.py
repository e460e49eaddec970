"""``plot``: ``save_dir/results.png`` with every metric's curve per epoch, train next to val.

Default on. Written at the end of training (also when it ends in an exception, so a crashed run
still has its picture), with matplotlib's non-interactive Agg backend. Metrics are grouped by
their name after the ``train/``/``val/`` prefix: ``train/loss`` and ``val/loss`` share the
"loss" panel, ``val/acc`` gets an "acc" panel, ``lr`` its own.
"""

from __future__ import annotations

from pathlib import Path

import trainhooks


def group_metrics(history: list[dict[str, float]]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{panel: {series: [(epoch (1-based), value), ...]}}, in first-seen order."""
    panels: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for i, row in enumerate(history):
        for key, value in row.items():
            prefix, _, leaf = key.rpartition("/")
            panel = leaf if prefix in ("train", "val", "") else key
            panels.setdefault(panel, {}).setdefault(key, []).append((i + 1, float(value)))
    return panels


def plot_history(history: list[dict[str, float]], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = group_metrics(history)
    n = max(len(panels), 1)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (panel, series) in zip(axes.flat, panels.items()):
        for name, points in series.items():
            xs, ys = zip(*points)
            style = "--" if name.startswith("val/") else "-"
            ax.plot(xs, ys, style, marker="o", markersize=3, label=name)
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class PlotResults(trainhooks.Callback):
    """Write ``results.png`` at the end of training."""

    rank_zero_only = True

    def __init__(self, filename: str = "results.png") -> None:
        self.filename = filename

    def _write(self, trainer: trainhooks.Trainer) -> None:
        if trainer.history:
            path = plot_history(trainer.history, trainer.save_dir / self.filename, title=trainer.name)
            trainer.log_artifact("results.png", path)

    def on_train_end(self, trainer: trainhooks.Trainer) -> None:
        self._write(trainer)

    def on_exception(self, trainer: trainhooks.Trainer, exception: BaseException) -> None:
        if trainer.stage == "fit":
            self._write(trainer)


__all__ = ["PlotResults", "group_metrics", "plot_history"]
