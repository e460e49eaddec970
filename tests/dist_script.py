"""A torchrun script that builds its own Trainer (no CLI), for tests/test_distributed.py.

The model trains through ``training_step`` (so DDP must be entered through forward redirection or
the ranks' weights drift apart), at the precision given, optionally resuming a checkpoint. Each
rank writes what it saw to ``<out>/rank<N>.json``::

    torchrun --standalone --nproc_per_node 2 tests/dist_script.py --out DIR --save-dir DIR [--resume CKPT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import trainhooks
from trainhooks.testing import tiny_digits


class StepNet(nn.Module):
    """A digits MLP trained through ``training_step``/``validation_step``; remembers its autocast dtype."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.step_dtype = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any) -> torch.Tensor:
        x, y = batch
        out = self(x)
        self.step_dtype = str(out.dtype)
        return nn.functional.cross_entropy(out, y)

    def validation_step(self, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch
        out = self(x)
        return {"loss": nn.functional.cross_entropy(out, y), "acc": (out.argmax(1) == y).float().mean()}


def params_digest(model: nn.Module) -> str:
    flat = torch.cat([p.detach().flatten().float().cpu() for p in model.parameters()])
    return hashlib.sha256(flat.numpy().tobytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--save-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resume", default=None)
    args = parser.parse_args()

    train, val = tiny_digits(n_train=256, n_val=64, batch_size=16)
    trainer = trainhooks.Trainer(
        StepNet(),
        epochs=args.epochs,
        precision=args.precision,
        device=args.device,
        save_dir=args.save_dir,
        default_plugins=False,
        plugins=["checkpoint", "csv"],
        seed=0,
        dist_timeout=30,
        verbose=False,
    )
    seen: dict[str, Any] = {}

    def on_train_start(trainer: trainhooks.Trainer) -> None:
        seen.update(
            backend=str(dist.get_backend()),
            device=str(trainer.device),
            model=type(trainer.model).__name__,
            rank=trainer.rank,
            world_size=trainer.world_size,
            is_global_zero=trainer.is_global_zero,
            resumed_epochs=len(trainer.history),
        )

    trainer.add_callback("on_train_start", on_train_start)
    result = trainer.fit(train, val, resume=args.resume)
    seen.update(
        history=result.history,
        global_step=result.global_step,
        params=params_digest(trainer.unwrapped_model),
        step_dtype=trainer.unwrapped_model.step_dtype,
        model_after=type(trainer.model).__name__,
        group_after=dist.is_initialized(),
        artifacts=sorted(result.artifacts),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{trainer.rank}.json").write_text(json.dumps(seen))


if __name__ == "__main__":
    main()
