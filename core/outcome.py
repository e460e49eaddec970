"""Did a fit() that returned normally produce anything usable?

A run can end without an error and still leave nothing to use: ``nan_guard`` stopped it at
step 1 (the weights are NaN after the optimizer step on a NaN loss, so the checkpoint plugin
refused to save them), or no step was trained at all. ``trainhooks fit`` then exits with status
3 and one ``trainhooks: error: training produced nothing usable: ...`` line, so a scheduler or a
CI job can tell it from a finished run (0) and from a failed one (1), even with ``--quiet``.

A run whose last weights are not finite but that saved a checkpoint before (``best.pt`` from an
earlier epoch) did produce something usable: it ends as the stop it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from trainhooks.trainer import FitResult, Trainer


def nothing_usable(trainer: Trainer, result: FitResult) -> str | None:
    """Why ``result`` holds nothing usable, or None when it does. One pass over the weights."""
    by = f" [{result.stopped_by}]" if result.stopped_by else ""
    if result.global_step == 0:
        return f"no training step ran ({result.stop_reason or 'no reason given'}{by})"
    if _finite(trainer.unwrapped_model):
        return None
    saved = [name for name, path in result.artifacts.items() if path.suffix == ".pt" and name != "emergency.pt"]
    if saved:
        return None
    return (
        f"the model's weights are not finite (NaN/inf) after step {result.global_step} and this run saved no "
        f"checkpoint: {result.stop_reason or 'training ended'}{by}"
    )


def _finite(model: torch.nn.Module) -> bool:
    checks = [torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point()]
    return bool(torch.stack(checks).all().item()) if checks else True
