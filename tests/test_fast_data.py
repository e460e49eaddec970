"""The in-memory fast path yields exactly the DataLoader's batches and changes no result."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, Subset, TensorDataset

import trainhooks
from trainhooks.data import TensorBatches, fast_batches, fast_path_reason
from trainhooks.testing import HookRecorder, tiny_model


def _data(n: int = 100) -> TensorDataset:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 2, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    w = torch.rand(n, generator=gen, dtype=torch.float64)
    return TensorDataset(x, y, w)


def _assert_same_batches(a: list, b: list) -> None:
    assert len(a) == len(b)
    for got, want in zip(a, b):
        assert type(got) is type(want) is list
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and g.shape == w.shape and g.stride() == w.stride()
            assert torch.equal(g, w)
            assert g.is_contiguous()


def _both_ways(make_loader) -> tuple[list, list]:
    """Iterate a fresh loader normally and a second fresh one through the fast path, for 2 epochs."""
    torch.manual_seed(123)
    slow_loader = make_loader()
    slow = [b for _ in range(2) for b in slow_loader]
    slow_after = torch.rand(3)  # the global stream after the epochs
    torch.manual_seed(123)
    fast_loader = make_loader()
    fast_iter = fast_batches(fast_loader)
    assert isinstance(fast_iter, TensorBatches)
    fast = [b for _ in range(2) for b in fast_iter]
    assert torch.equal(torch.rand(3), slow_after), "the global random stream diverged"
    if slow_loader.generator is not None:
        assert torch.equal(slow_loader.generator.get_state(), fast_loader.generator.get_state())
    return slow, fast


@pytest.mark.parametrize("batch_size", [1, 7, 32, 100, 150])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_equal_dataloader(batch_size: int, drop_last: bool, shuffle: bool) -> None:
    ds = _data()

    def make() -> DataLoader:
        gen = torch.Generator().manual_seed(7)
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=gen)

    slow, fast = _both_ways(make)
    _assert_same_batches(fast, slow)
    assert len(fast_batches(make())) == len(make())


def test_unseeded_shuffle_consumes_the_global_generator_identically() -> None:
    ds = _data(50)
    slow, fast = _both_ways(lambda: DataLoader(ds, batch_size=8, shuffle=True))
    _assert_same_batches(fast, slow)


def test_subset_from_random_split_and_user_batch_sampler() -> None:
    ds = _data(90)
    train, _ = torch.utils.data.random_split(ds, [60, 30], generator=torch.Generator().manual_seed(1))
    assert type(train) is Subset
    slow, fast = _both_ways(lambda: DataLoader(train, batch_size=16, shuffle=True))
    _assert_same_batches(fast, slow)

    def with_batch_sampler() -> DataLoader:
        sampler = RandomSampler(ds, replacement=True, num_samples=45, generator=torch.Generator().manual_seed(3))
        return DataLoader(ds, batch_sampler=BatchSampler(sampler, batch_size=10, drop_last=False))

    slow, fast = _both_ways(with_batch_sampler)
    _assert_same_batches(fast, slow)


def test_batches_never_share_memory_with_the_dataset() -> None:
    ds = _data(20)
    before = ds.tensors[0].clone()
    for x, _, _ in fast_batches(DataLoader(ds, batch_size=5)):
        x.mul_(0)
    assert torch.equal(ds.tensors[0], before)


def _collate(batch):
    return batch


class _MyLoader(DataLoader):
    pass


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda ds: [1, 2, 3], "not a torch DataLoader"),
        (lambda ds: _MyLoader(ds, batch_size=4), "not a torch DataLoader"),
        (lambda ds: DataLoader(list(zip(*ds.tensors)), batch_size=4), "not a TensorDataset"),  # type: ignore[arg-type]
        (lambda ds: DataLoader(ds, batch_size=4, collate_fn=_collate), "custom collate_fn"),
        (lambda ds: DataLoader(ds, batch_size=4, num_workers=1), "num_workers"),
        (lambda ds: DataLoader(ds, batch_size=None), "automatic batching is off"),
        (lambda ds: DataLoader(ds, batch_size=4, sampler=list(range(10))), "custom sampler"),
        (lambda ds: DataLoader(ds, batch_size=4, sampler=SequentialSampler(ds)), None),
        (lambda ds: DataLoader(Subset(ds, [-1, 0]), batch_size=4), "not a TensorDataset or a Subset"),
    ],
)
def test_falls_back_to_the_data_as_given(make, reason: str | None) -> None:
    data = make(_data(10))
    found = fast_path_reason(data)
    if reason is None:
        assert found is None and isinstance(fast_batches(data), TensorBatches)
    else:
        assert found is not None and reason in found
        assert fast_batches(data) is data
    assert fast_batches(data, enabled=False) is data


def _fit(fast: bool, tmp_path, **kwargs) -> tuple[trainhooks.Trainer, tuple[Any, Any, torch.Tensor], Any]:
    random.seed(0)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(5)
    ds = _data(70)
    x = ds.tensors[0].reshape(70, 6).repeat(1, 11)[:, :64].float()
    y = ds.tensors[1]
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=gen)
    val = DataLoader(TensorDataset(x[:33], y[:33]), batch_size=10)
    model = tiny_model()
    recorder = HookRecorder(skip=frozenset({"on_before_backward", "on_after_backward"}))
    trainer = trainhooks.Trainer(
        model,
        loss_fn=torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        epochs=3,
        default_plugins=False,
        save_dir=tmp_path / ("fast" if fast else "slow"),
        fast_data=fast,
        plugins=[recorder],
        **kwargs,
    )
    result = trainer.fit(train, val)
    preds = trainer.predict(val)
    return trainer, (result, preds, torch.rand(2)), recorder


def test_training_is_bitwise_identical_with_and_without_the_fast_path(tmp_path) -> None:
    slow_trainer, (slow_result, slow_preds, slow_rng), slow_rec = _fit(False, tmp_path)
    fast_trainer, (fast_result, fast_preds, fast_rng), fast_rec = _fit(True, tmp_path)
    for (name, a), (_, b) in zip(
        slow_trainer.model.state_dict().items(), fast_trainer.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert slow_result.history == fast_result.history  # floats compared exactly
    assert torch.equal(slow_preds, fast_preds)
    assert torch.equal(slow_rng, fast_rng)
    slow_batches = [c.kwargs["batch"] for c in slow_rec.of("on_train_batch_start")]
    fast_batches_seen = [c.kwargs["batch"] for c in fast_rec.of("on_train_batch_start")]
    _assert_same_batches(fast_batches_seen, slow_batches)
    assert slow_rec.names() == fast_rec.names()
