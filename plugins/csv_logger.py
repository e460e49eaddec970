"""``csv``: one row per epoch in ``save_dir/metrics.csv``, every metric a column.

Default on. The file is written from ``trainer.history`` so it always matches it: a row is
appended each epoch from the ``on_log`` call that hands over the epoch's final row (after every
``on_fit_epoch_end``, so a metric any plugin logs there is in it: no row is ever rewritten for a
late value); when a metric appears that earlier epochs did not have, the file is rewritten
(atomically) with the wider header and blank cells for the old rows, so columns never shift. ``epoch`` is 1-based, as in the progress lines; a resumed run continues the file
without duplicated or missing epochs.

Keras' CSVLogger options: ``--csv-separator ';'`` (``separator``; ``\t`` for tabs) and
``--csv-append`` (``append=True``): the rows already in the file (earlier runs) are kept and this
run's rows are added after them, with a ``run`` column (``trainer.name``) telling runs apart;
point several runs at one file with ``--csv-file /path/all-runs.csv``.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import trainhooks
from trainhooks import Option


def single_character(value: str) -> str:
    """a single character (``,``, ``;``, ``\\t``)"""
    text = {"\\t": "\t", "tab": "\t"}.get(value, value) if isinstance(value, str) else value
    if not isinstance(text, str) or len(text) != 1 or text in '\r\n"':
        raise ValueError("the csv module needs one character, not a newline or a quote")
    return text


class CSVLogger(trainhooks.Callback):
    """Write ``metrics.csv`` (or ``filename``) in the run's save_dir."""

    rank_zero_only = True

    filename = Option(str, "metrics.csv", "file name in save_dir, or a path of its own", flag="csv-file")
    separator = Option(single_character, ",", "column separator (Keras' separator)", flag="csv-separator")
    append = Option(
        bool, False, "keep the file's rows from earlier runs and add this run's (Keras' append)", flag="csv-append"
    )

    def __init__(self, filename: str | None = None, **settings: Any) -> None:
        if filename is not None:
            settings["filename"] = filename
        super().__init__(**settings)
        self.header: list[str] = []
        self.rows_written = 0
        self._earlier: list[dict[str, str]] = []  # append mode: rows of earlier runs
        self._earlier_header: list[str] = []
        self._resumed = False

    def path(self, trainer: trainhooks.Trainer) -> Path:
        return trainer.save_dir / self.filename  # an absolute filename stays itself

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        self.header, self.rows_written = [], 0
        self._earlier, self._earlier_header, self._resumed = [], [], False
        path = self.path(trainer)
        if self.append and path.is_file():
            with path.open(newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh, delimiter=self.separator)
                self._earlier = list(reader)
                self._earlier_header = list(reader.fieldnames or [])

    def _header(self, trainer: trainhooks.Trainer) -> list[str]:
        keys = list(dict.fromkeys(k for row in trainer.history for k in row))
        if not self.append:
            return ["epoch", *keys]
        old = [k for k in self._earlier_header if k not in ("run", "epoch")]
        return ["run", "epoch", *dict.fromkeys([*old, *keys])]

    def on_fit_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        # Announced here, where the file list of the summary has always had it first; the row
        # itself is written from on_log, once every on_fit_epoch_end has run.
        trainer.log_artifact("metrics.csv", self.path(trainer))

    def on_log(self, trainer: trainhooks.Trainer, epoch_end: bool) -> None:
        if not epoch_end:  # per-step values are for trackers; metrics.csv has one row per epoch
            return
        path = self.path(trainer)
        header = self._header(trainer)
        n = len(trainer.history)
        fast = not self.append and header == self.header and self.rows_written == n - 1
        if fast and path.exists():
            with path.open("a", newline="", encoding="utf-8") as fh:
                csv.writer(fh, delimiter=self.separator).writerow(self._row(header, n - 1, trainer.history[-1]))
        else:
            self._rewrite(path, header, trainer)
        self.header, self.rows_written = header, n

    def _row(self, header: list[str], index: int, metrics: dict[str, float], run: str = "") -> list[Any]:
        if header[:1] == ["run"]:
            return [run, index + 1, *(metrics.get(k, "") for k in header[2:])]
        return [index + 1, *(metrics.get(k, "") for k in header[1:])]

    def _rewrite(self, path: Path, header: list[str], trainer: trainhooks.Trainer) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=self.separator)
        writer.writerow(header)
        earlier = self._earlier
        if self._resumed:  # this run's own rows from before the checkpoint come from its history
            earlier = [row for row in earlier if row.get("run") != trainer.name]
        for row in earlier:
            writer.writerow([row.get(k) or "" for k in header])
        for i, metrics in enumerate(trainer.history):
            writer.writerow(self._row(header, i, metrics, trainer.name))
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
        self._resumed = True
