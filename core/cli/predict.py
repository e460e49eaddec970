"""``trainhooks predict``: predict with saved weights; writes predictions.csv (or .pt)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trainhooks.cli.runs import _make_trainer
from trainhooks.plugin_manager import PluginManager


def _cmd_predict(args: argparse.Namespace, plugin_manager: PluginManager, plugin_options: dict[str, Any]) -> int:

    trainer, task = _make_trainer(args, plugin_manager, plugin_options, training=False)
    data = task.predict_data if task.predict_data is not None else task.val_data
    if data is None:
        from trainhooks.errors import TaskError

        raise TaskError(f"task {task.name!r} has no predict_data (or val_data) to predict on")
    trainer._ensure_save_dir()  # before predicting: an unwritable save dir is one line, not a traceback
    preds = trainer.predict(data)
    try:
        out = _write_predictions(preds, trainer.save_dir)
    except OSError as exc:
        from trainhooks.errors import ConfigError

        raise ConfigError(f"cannot write predictions into {trainer.save_dir}: {exc.strerror or exc}") from exc
    count = len(preds) if hasattr(preds, "__len__") else 0
    print(f"{count} predictions written to {out}")
    return 0


def _write_predictions(preds: Any, save_dir: Path) -> Path:
    import torch

    if isinstance(preds, torch.Tensor) and (preds.dim() == 1 or (preds.dim() == 2 and preds.shape[1] == 1)):
        # One output per sample (regression): the values themselves, not a softmax over one column.
        out = save_dir / "predictions.csv"
        with out.open("w", encoding="utf-8") as fh:
            fh.write("index,prediction\n")
            for i, value in enumerate(preds.float().reshape(-1).tolist()):
                fh.write(f"{i},{value!r}\n")
    elif isinstance(preds, torch.Tensor) and preds.dim() == 2:
        probs = preds.float().softmax(dim=1)
        conf, label = probs.max(dim=1)
        out = save_dir / "predictions.csv"
        with out.open("w", encoding="utf-8") as fh:
            fh.write("index,prediction,confidence\n")
            for i, (lab, c) in enumerate(zip(label.tolist(), conf.tolist())):
                fh.write(f"{i},{lab},{c:.6f}\n")
    else:
        out = save_dir / "predictions.pt"
        torch.save(preds, out)
    return out
