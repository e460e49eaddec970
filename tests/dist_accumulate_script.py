"""A torchrun script for tests/test_distributed_extras.py: accumulation and EMA under DDP.

``--mode accumulate``: a plain MLP on a sequential (unshuffled) digits loader, batch 16,
``accumulate_grad_batches=2``. A test plugin registers a DDP comm hook in ``on_train_start`` that
counts the gradient all-reduces, and records after every micro-batch whether one happened.

``--mode ema``: an MLP with BatchNorm (its running statistics differ per rank between the
epoch-end broadcasts), the ``ema`` plugin, accumulation and checkpoints.

Each rank writes ``<out>/rank<N>.pt`` (``torch.save``) with what it saw::

    torchrun --standalone --nproc_per_node 2 tests/dist_accumulate_script.py --mode M --out DIR --save-dir DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

import trainhooks
from trainhooks.plugins.ema import EMA

BATCH = 16
N_TRAIN = 288  # 144 samples per rank: 9 micro-batches, so the last group has one micro-batch


def digits(n_train: int, n_val: int, batch_size: int) -> tuple[Any, Any]:
    """Unshuffled digits loaders: rank r's k-th micro-batch is known exactly (see the test)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data[: n_train + n_val], dtype=torch.float32) / 16.0
    y = torch.tensor(data.target[: n_train + n_val], dtype=torch.int64)
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:n_train], y[:n_train]), batch_size=batch_size)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[n_train:], y[n_train:]), batch_size=batch_size)
    return train, val


def mlp(batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    middle: list[nn.Module] = [nn.BatchNorm1d(32)] if batchnorm else []
    return nn.Sequential(nn.Linear(64, 32), *middle, nn.ReLU(), nn.Linear(32, 10))


class CountAllReduce(trainhooks.Callback):
    """Counts DDP's gradient all-reduces (a comm hook) and notes which micro-batches had one."""

    def __init__(self) -> None:
        self.calls = 0
        self.seen = 0
        self.synced: list[tuple[int, int, bool]] = []  # (epoch, batch_idx, an all-reduce happened)

    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        def counting(state, bucket):  # type: ignore[no-untyped-def]  # DDP checks an annotation's type
            self.calls += 1
            return allreduce_hook(state, bucket)

        trainer.model.register_comm_hook(None, counting)  # type: ignore[operator]

    def on_train_microbatch_end(self, trainer: trainhooks.Trainer, batch_idx: int) -> None:
        self.synced.append((trainer.epoch, batch_idx, self.calls > self.seen))
        self.seen = self.calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["accumulate", "ema"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--save-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    train, val = digits(N_TRAIN, 64, BATCH)
    model = mlp(batchnorm=args.mode == "ema")
    counter = CountAllReduce()
    ema = EMA(decay=0.8, warmup=0, use_for="val,checkpoint")
    plugins: list[Any] = ["checkpoint"] + ([ema] if args.mode == "ema" else [])
    trainer = trainhooks.Trainer(
        model,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        epochs=args.epochs,
        save_dir=args.save_dir,
        default_plugins=False,
        plugins=plugins,
        callbacks=[counter] if args.mode == "accumulate" else [],
        accumulate_grad_batches=2,
        seed=0,
        dist_timeout=30,
        verbose=False,
    )
    result = trainer.fit(train, val)
    seen: dict[str, Any] = {
        "rank": dist.get_rank() if dist.is_initialized() else trainer.rank,
        "global_step": result.global_step,
        "history": result.history,
        "params": {k: v.detach().clone() for k, v in trainer.unwrapped_model.state_dict().items()},
        "synced": counter.synced,
        "allreduces": counter.calls,
    }
    if args.mode == "ema":
        seen.update(ema=ema.weights(), updates=ema.updates, steps=ema.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(seen, args.out / f"rank{trainer.rank}.pt")


if __name__ == "__main__":
    main()
