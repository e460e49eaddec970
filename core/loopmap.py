"""The one place that states hook order: which hooks fire, when, and in what order.

``trainhooks hooks --loop`` prints this map with, for each hook, the plugins that run there
in call order (fastai's ``show_training_loop``, for pluggy plugins). A test runs a real fit and
checks that the hooks fire exactly as this map says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from trainhooks.plugin_manager import PluginManager

Step = Union[str, tuple[str, list["Step"]]]  # noqa: UP007 - runtime alias needs Union on 3.10

TRAIN_BATCH: tuple[str, ...] = (
    "on_train_batch_start",
    "on_before_backward",
    "on_after_backward",
    "on_train_microbatch_end",
    "on_before_optimizer_step",
    "optimizer_step",
    "on_params_update",
    "on_before_zero_grad",
    "on_train_batch_end",
    "should_stop",
)
"""The hooks of every training step, in order (the ones whose cost per call matters most)."""

VAL_LOOP: list[Step] = [
    "on_val_start",
    ("for each validation batch", ["on_val_batch_start", "on_val_batch_end"]),
    "on_val_end",
]

LOOPS: dict[str, list[Step]] = {
    "setup (Trainer construction)": ["add_options", "configure"],
    "fit": [
        "on_fit_start",
        "on_pretrain_routine_start",
        "on_pretrain_routine_end",
        "on_train_start",
        (
            "for each epoch",
            [
                "on_train_epoch_start",
                ("for each training batch", list(TRAIN_BATCH)),
                "on_train_epoch_end",
                *VAL_LOOP,
                "on_fit_epoch_end",
                "on_log",
                "should_stop",
            ],
        ),
        "on_train_end",
        "teardown",
    ],
    "fit or validate or predict, on an exception": ["on_exception", "teardown"],
    "validate": [*VAL_LOOP, "teardown"],
    "predict": [
        "on_predict_start",
        ("for each prediction batch", ["on_predict_batch_start", "on_predict_postprocess_end", "on_predict_batch_end"]),
        "on_predict_end",
        "teardown",
    ],
    "export": ["export_formats", "on_export_start", "export_model", "on_export_end"],
    "save_checkpoint": ["on_save_checkpoint", "on_model_save"],
    "resume (fit(resume=...)), inside on_pretrain_routine": ["on_load_checkpoint"],
}


def unroll(steps: list[Step], repeat: int = 1) -> Iterator[str]:
    """The hook sequence of ``steps`` with every loop run ``repeat`` times."""
    for step in steps:
        if isinstance(step, str):
            yield step
        else:
            for _ in range(repeat):
                yield from unroll(step[1], repeat)


def render(plugin_manager: PluginManager | None = None) -> str:
    """The loop map as text; with a plugin manager, each hook lists its plugins in call order."""
    lines: list[str] = []

    def walk(steps: list[Step], depth: int) -> None:
        pad = "    " * depth
        for step in steps:
            if isinstance(step, str):
                marker = ""
                if plugin_manager is not None:
                    order = plugin_manager.call_order(step)
                    marker = " -> " + (", ".join(order) if order else "(none)")
                lines.append(f"{pad}{step}{marker}")
            else:
                lines.append(f"{pad}{step[0]}:")
                walk(step[1], depth + 1)

    for title, steps in LOOPS.items():
        lines.append(f"{title}:")
        walk(steps, 1)
    return "\n".join(lines)
