"""The two workloads of the performance baseline, built identically for every loop under test.

* ``tiny``: MLP 64-64-10 on scikit-learn's digits (all 1797 images), batch 32, SGD, 1 thread:
  57 steps per epoch, about 200 µs per step with a DataLoader. Framework overhead shows here.
* ``small``: a small CNN (conv 1→16→32 on the 8x8 images, then linear), batch 64, Adam, 2
  threads: 29 steps per epoch, about 1.7 ms per step. Typical of "real" small models.

Every measurement builds its data, model and optimizer afresh from fixed seeds, so each loop
does the same arithmetic on the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Workload:
    """What to train and how; ``threads`` is applied with ``torch.set_num_threads``."""

    name: str
    batch_size: int
    threads: int
    optimizer: str
    lr: float
    description: str

    def model(self, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        if self.name == "tiny":
            return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, 10),
        )

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(model.parameters(), lr=self.lr)
        return torch.optim.Adam(model.parameters(), lr=self.lr)

    def loader(self, seed: int = 0) -> torch.utils.data.DataLoader[Any]:
        """A shuffling DataLoader over a TensorDataset, seeded: the users' usual way in."""
        x, y = digits()
        return torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y),
            batch_size=self.batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )

    def steps_per_epoch(self) -> int:
        return -(-len(digits()[0]) // self.batch_size)

    def apply_threads(self) -> None:
        torch.set_num_threads(self.threads)


@cache
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled digits as (float32 inputs in [0, 1], int64 labels); no download."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return torch.tensor(data.data, dtype=torch.float32) / 16.0, torch.tensor(data.target, dtype=torch.int64)


WORKLOADS: dict[str, Workload] = {
    "tiny": Workload("tiny", 32, 1, "sgd", 0.05, "MLP 64-64-10, digits, batch 32, SGD, 1 thread"),
    "small": Workload(
        "small", 64, 2, "adam", 1e-3, "CNN conv16-conv32-linear on 8x8, digits, batch 64, Adam, 2 threads"
    ),
}
