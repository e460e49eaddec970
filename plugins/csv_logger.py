"""``csv``: one row per epoch in ``save_dir/metrics.csv``, every metric a column.

Default on. The file is written from ``trainer.history`` so it always matches it: a row is
appended each epoch (and rewritten if a metric joins that epoch's history entry after the row
was written, from a later ``on_fit_epoch_end``); when a metric appears that earlier epochs did not have, the file is
rewritten (atomically) with the wider header and blank cells for the old rows, so columns never
shift. ``epoch`` is 1-based, as in the progress lines; a resumed run continues the file
without duplicated or missing epochs.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import trainhooks


class CSVLogger(trainhooks.Callback):
    """Write ``metrics.csv`` (or ``filename``) in the run's save_dir."""

    rank_zero_only = True

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename
        self.header: list[str] = []
        self.rows_written = 0
        self._last_row: dict[str, float] | None = None  # the newest row as written

    def path(self, trainer: trainhooks.Trainer) -> Path:
        return trainer.save_dir / self.filename

    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        path = self.path(trainer)
        keys = list(dict.fromkeys(k for row in trainer.history for k in row))
        header = ["epoch", *keys]
        n = len(trainer.history)
        # A plugin that logs in on_fit_epoch_end after this one (no tryfirst) changes the row
        # already written: caught here one epoch later (and at train end), by a rewrite.
        previous_unchanged = n < 2 or self._last_row == trainer.history[-2]
        if header == self.header and self.rows_written == n - 1 and previous_unchanged and path.exists():
            with path.open("a", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(self._row(header, n - 1, trainer.history[-1]))
        else:
            self._rewrite(path, header, trainer.history)
        self.header, self.rows_written = header, n
        self._last_row = dict(trainer.history[-1]) if n else None
        trainer.log_artifact("metrics.csv", path)

    def on_train_end(self, trainer: trainhooks.Trainer) -> None:
        if trainer.history and self._last_row is not None and self._last_row != trainer.history[-1]:
            self._rewrite(
                self.path(trainer), ["epoch", *dict.fromkeys(k for r in trainer.history for k in r)], trainer.history
            )
            self._last_row = dict(trainer.history[-1])

    @staticmethod
    def _row(header: list[str], index: int, metrics: dict[str, float]) -> list[Any]:
        return [index + 1, *(metrics.get(k, "") for k in header[1:])]

    def _rewrite(self, path: Path, header: list[str], history: list[dict[str, float]]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        for i, metrics in enumerate(history):
            writer.writerow(self._row(header, i, metrics))
        path.parent.mkdir(parents=True, exist_ok=True)
        from trainhooks.checkpointing import temp_file_beside  # (imports torch: not at plugin load)

        fd, tmp = temp_file_beside(path)  # mode from the umask, not mkstemp's 0600: teammates can read it
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                fh.write(buf.getvalue())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def state_dict(self) -> dict[str, Any]:
        return {"rows_written": self.rows_written, "header": list(self.header)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The file is rebuilt from the restored history on the next epoch: resumed runs never
        # duplicate or lose rows, even if the file on disk ran ahead of the checkpoint.
        self.rows_written = -1
        self.header = list(state_dict.get("header", []))
