"""Mixed precision: ``Trainer(precision="bf16" | "16")``, ``trainhooks fit --precision bf16``.

* ``"32"`` (default): nothing here runs; the training step is the plain one.
* ``"bf16"``: forward and loss under ``torch.autocast(device, torch.bfloat16)``. bfloat16 has
  float32's exponent range, so gradients need no scaling. Works on CUDA (Ampere and newer) and on
  the CPU.
* ``"16"``: ``torch.autocast(device, torch.float16)`` plus a ``torch.amp.GradScaler``: the loss
  is scaled before ``backward`` so small float16 gradients do not flush to zero, and the
  gradients are unscaled right after ``backward``, so ``on_after_backward``,
  ``on_before_optimizer_step`` and gradient clipping all see the true gradients. The scaler skips
  the optimizer step when a gradient is inf/NaN and adapts its scale; its state is saved in
  checkpoints (``checkpoint["grad_scaler"]``) and restored on resume.

Validation runs under the same autocast; prediction and export stay in float32. Parameters and
optimizer state stay float32 throughout (autocast only changes the dtype of operations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from trainhooks.errors import ConfigError

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}
"""Precision names and the autocast dtype each uses (None: no autocast)."""

_ALIASES = {
    "32": "32",
    "fp32": "32",
    "32-true": "32",
    "bf16": "bf16",
    "bf16-mixed": "bf16",
    "16": "16",
    "fp16": "16",
    "16-mixed": "16",
}


def parse_precision(value: str | int | None) -> str:
    """``"32"``, ``"bf16"`` or ``"16"`` from what a user may write (``32``, ``"fp16"``, ``"bf16-mixed"``...).

    :raises ConfigError: an unknown precision; lists the accepted ones.
    """
    key = "32" if value is None else str(value).strip().lower()
    if key not in _ALIASES:
        raise ConfigError(f"precision {value!r} is not one of '32', 'bf16', '16' (mixed precision with autocast)")
    return _ALIASES[key]


class MixedPrecision:
    """Autocast for the step and validation, and a GradScaler for float16."""

    def __init__(self, precision: str, device: torch.device) -> None:
        dtype = PRECISIONS[precision]
        if dtype is None:
            raise ConfigError("MixedPrecision needs precision 'bf16' or '16'; '32' needs none")
        if device.type not in ("cuda", "cpu"):
            raise ConfigError(f"precision {precision!r} is supported on cuda and cpu devices, not {device.type!r}")
        if device.type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"precision 'bf16' needs a GPU with bfloat16 support; {device} has none (use '16')")
        self.precision = precision
        self.dtype: torch.dtype = dtype
        self.device_type = device.type
        self.scaler: torch.amp.GradScaler | None = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None

    def autocast(self) -> torch.autocast:
        """The autocast context for this precision and device."""
        return torch.autocast(self.device_type, dtype=self.dtype)

    def wrap_step(self, step: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
        """``step`` (forward and loss) run under autocast."""
        device_type, dtype = self.device_type, self.dtype

        def amp_step(batch: Any) -> dict[str, Any]:
            with torch.autocast(device_type, dtype=dtype):
                return step(batch)

        return amp_step

    def bind(self, optimizer: torch.optim.Optimizer) -> tuple[Callable[[torch.Tensor], Any], Callable[[], Any]]:
        """(backward(loss), optimizer_step()) for the training loop."""
        scaler = self.scaler
        if scaler is None:  # bfloat16: float32's range, no scaling
            return torch.Tensor.backward, optimizer.step

        def backward(loss: torch.Tensor) -> None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # hooks and clipping see true gradients

        def optimizer_step() -> None:
            scaler.step(optimizer)  # skipped when a gradient is inf/NaN
            scaler.update()

        return backward, optimizer_step

    def state_dict(self) -> dict[str, Any] | None:
        """The GradScaler's state (float16), or None."""
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore what :meth:`state_dict` returned (ignored without a scaler)."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


__all__ = ["PRECISIONS", "MixedPrecision", "parse_precision"]
