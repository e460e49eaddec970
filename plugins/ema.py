"""``ema``: an exponential moving average of the model's weights (opt-in: ``-p ema``).

After every ``every``-th optimizer step the average moves towards the current weights::

    d = decay * (1 - exp(-updates / warmup))      # warmup = 0: d = decay
    ema = d * ema + (1 - d) * weights

``updates`` counts the averaging steps done so far (1 for the first). The warm-up is
Ultralytics' (``ModelEMA``, ``tau``): early on, ``d`` is small and the average follows the weights
closely, so a short run is not dominated by its random initialisation. Defaults are
Ultralytics' too (``decay=0.9999``, ``warmup=2000`` steps). Every floating-point entry of the
model's ``state_dict`` is averaged, BatchNorm running statistics included; integer buffers
(``num_batches_tracked``) are left alone.

The average is updated in ``on_before_zero_grad``, which fires once per optimizer step (once per
accumulated step, never per micro-batch, and on every rank under DDP, where the weights are
identical), with one fused ``torch._foreach_lerp_`` on the model's own device: no copy to the CPU,
no device sync. Under DDP the averages of buffers (BatchNorm statistics, which each rank updates
from its own batches) are made rank 0's at every epoch end and before validating with the
average, so every rank holds the average the checkpoint holds.

``use_for`` (``--ema-use-for``, default ``val,checkpoint,export``) chooses where the averaged
weights replace the trained ones:

* ``val``: validation runs with the average (swapped in at ``on_val_start``, swapped back at
  ``on_val_end``, also when validation fails), so ``val/*`` metrics, ``best.pt``'s choice and
  early stopping judge the averaged model;
* ``checkpoint``: the ``"model"`` entry of ``last.pt``/``best.pt`` holds the average (what
  ``trainhooks validate/export --weights`` then load); the trained weights travel in the
  plugin's state, so ``--resume`` continues training them exactly;
* ``export``: ``Trainer.export`` writes the average (loaded into the exported copy; the model
  being trained is not touched);
* ``none``: the average is only kept (in checkpoints, ``trainer`` attribute ``EMA.weights()``).

A checkpoint always holds the average itself, the number of updates and steps, so a resumed run
continues the same average exactly. Resuming such a checkpoint without ``-p ema`` trains on from
its ``"model"`` entry (the average, with ``checkpoint`` in ``use_for``).
"""

from __future__ import annotations

import math
from typing import Any

import trainhooks
from trainhooks import Option

USES = ("val", "checkpoint", "export")


def parse_use_for(value: str | list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    """a comma-separated subset of val, checkpoint, export, or none

    ``"val,checkpoint"`` → {"val", "checkpoint"}; ``"none"`` → {}.
    """
    if isinstance(value, frozenset):
        return value
    items = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)]
    items = [v for v in items if v]
    if items == ["none"]:
        return frozenset()
    unknown = [v for v in items if v not in USES]
    if unknown or not items:
        raise ValueError(f"unknown: {', '.join(unknown)}" if unknown else "empty")
    return frozenset(items)


def decay_value(value: str | float) -> float:
    """a number from 0 to 1, 1 excluded"""
    number = float(value.strip()) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0.0 <= number < 1.0:
        raise ValueError("1 would never move the average")
    return float(number)


class EMA(trainhooks.Callback):
    """Keep an exponential moving average of the weights; validate, save and export with it."""

    default_enabled = False

    decay = Option(decay_value, 0.9999, "decay of the weights' moving average", flag="ema-decay")
    warmup = Option(int, 2000, "warm-up in averaging steps: decay*(1-exp(-n/warmup)); 0: off", min=0, flag="ema-warmup")
    every = Option(int, 1, "update the average every N optimizer steps", min=1, flag="ema-every")
    use_for = Option(
        parse_use_for,
        "val,checkpoint,export",
        "where the average replaces the weights: val, checkpoint, export (comma-separated) or none",
        flag="ema-use-for",
    )

    def __init__(self, *args: Any, **settings: Any) -> None:
        super().__init__(*args, **settings)
        self._reset()

    # ------------------------------------------------------------------ run state
    def _reset(self) -> None:
        self.updates = 0  # averaging steps done
        self.steps = 0  # optimizer steps seen (every-th one updates)
        self.keys: list[str] = []
        self.shadow: list[Any] | None = None  # the average, one tensor per averaged entry
        self._live: list[Any] = []  # the model's own tensors (share storage with its parameters)
        self._buffer_at: list[int] = []  # positions of buffers (BatchNorm statistics) in keys
        self._loaded: dict[str, Any] | None = None
        self._backup: list[Any] | None = None

    def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
        # A new fit starts a new average; a resume then restores the saved one (load_state_dict).
        self._restore()
        self._reset()

    def _attach(self, trainer: trainhooks.Trainer) -> None:
        model = trainer.unwrapped_model
        state = model.state_dict()
        self.keys = [k for k, t in state.items() if t.is_floating_point()]
        self._live = [state[k] for k in self.keys]
        buffers = {name for name, _ in model.named_buffers()}
        self._buffer_at = [i for i, k in enumerate(self.keys) if k in buffers]

    def _agree(self, trainer: trainhooks.Trainer) -> None:
        """Under DDP: rank 0's average of the buffers on every rank (parameters already agree).

        DDP keeps parameters identical, so their averages are too; but each rank's BatchNorm
        statistics move with its own micro-batches between DDP's broadcasts, and so would their
        averages. Rank 0's are the ones its checkpoint saves, so every rank takes those, at each
        epoch end and before validating with the average. Without buffers, or in one process,
        nothing happens.
        """
        shadow = self.shadow
        if shadow is None or not self._buffer_at or not trainer.strategy.is_distributed:
            return
        trainer.strategy.broadcast_tensors([shadow[i] for i in self._buffer_at], "the ema buffer broadcast")

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        self._attach(trainer)
        if self.shadow is None:  # not restored from a checkpoint: the average starts at the weights
            self.shadow = [t.detach().clone() for t in self._live]

    def decay_at(self, updates: int) -> float:
        """The decay used for the ``updates``-th averaging step (1-based)."""
        if self.warmup == 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-updates / self.warmup))

    def on_before_zero_grad(self, trainer: trainhooks.Trainer) -> None:
        shadow = self.shadow
        if shadow is None:
            return
        self.steps += 1
        if self.steps % self.every:
            return
        self.updates += 1
        import torch

        # shadow += (1 - d) * (weights - shadow), i.e. shadow = d * shadow + (1 - d) * weights
        torch._foreach_lerp_(shadow, self._live, 1.0 - self.decay_at(self.updates))

    def weights(self) -> dict[str, Any]:
        """The averaged entries of the model's ``state_dict`` (empty before training started)."""
        if self.shadow is None:
            return {}
        return dict(zip(self.keys, self.shadow))

    # ------------------------------------------------------------------ swapping in and back
    def _swap_in(self, trainer: trainhooks.Trainer) -> None:
        import torch

        if self.shadow is None or self._backup is not None:
            return
        # Fetched again: a model moved to another device since (validate after load_checkpoint)
        # has new tensors, and the average follows it there.
        self._attach(trainer)
        self.shadow = [s.to(t.device) if s.device != t.device else s for s, t in zip(self.shadow, self._live)]
        self._backup = [t.clone() for t in self._live]
        torch._foreach_copy_(self._live, self.shadow)

    def _restore(self) -> None:
        import torch

        if self._backup is not None:
            torch._foreach_copy_(self._live, self._backup)
            self._backup = None

    def on_train_epoch_end(self, trainer: trainhooks.Trainer) -> None:
        self._agree(trainer)

    def on_val_start(self, trainer: trainhooks.Trainer) -> None:
        if "val" in self.use_for:
            self._agree(trainer)  # mid-epoch validation (val_every_n_steps) too
            self._swap_in(trainer)

    def on_val_end(self, trainer: trainhooks.Trainer) -> None:
        self._restore()

    def on_exception(self, trainer: trainhooks.Trainer) -> None:
        self._restore()  # a failed validation must not leave the average in the model

    def teardown(self, trainer: trainhooks.Trainer) -> None:
        self._restore()

    @trainhooks.hookimpl(tryfirst=True)
    def export_model(self, model: Any) -> None:
        # ``model`` is the exporter's own copy: load the average into it, then let the
        # format's provider (called after this tryfirst implementation) write it.
        if "export" in self.use_for and self.shadow is not None:
            model.load_state_dict({k: t.detach().cpu() for k, t in zip(self.keys, self.shadow)}, strict=False)
        return None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        if self.shadow is None:
            return {}
        return {
            "updates": self.updates,
            "steps": self.steps,
            "decay": self.decay,
            "weights": {k: t.detach().clone() for k, t in zip(self.keys, self.shadow)},
        }

    def on_save_checkpoint(self, trainer: trainhooks.Trainer, checkpoint: dict[str, Any]) -> None:
        if "checkpoint" not in self.use_for or self.shadow is None:
            return
        name = trainer.plugin_manager.get_name(self)
        state = checkpoint.get("plugins", {}).get(name)
        if state is None:
            return
        trained = checkpoint["model"]
        state["trained_model"] = trained
        checkpoint["model"] = {**trained, **state["weights"]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict if state_dict.get("weights") else None

    def on_load_checkpoint(self, trainer: trainhooks.Trainer) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None:
            return
        self._restore()
        self._attach(trainer)
        saved = loaded["weights"]
        differ = sorted(set(self.keys) ^ set(saved))
        if differ:
            raise trainhooks.CheckpointError(
                f"ema: the checkpoint's average does not fit this model (entries differ: {', '.join(differ[:5])})"
            )
        # On the model's device (it is already there inside fit), in the weights' dtype.
        self.shadow = [saved[k].to(device=t.device, dtype=t.dtype).clone() for k, t in zip(self.keys, self._live)]
        self.updates, self.steps = int(loaded["updates"]), int(loaded["steps"])
        # The file's "model" may be the average: training continues from the trained weights.
        trained = loaded.get("trained_model")
        if trained is not None:
            trainer.unwrapped_model.load_state_dict(trained)


__all__ = ["EMA", "parse_use_for"]
