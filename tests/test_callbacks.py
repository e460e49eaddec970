"""Unmarked callbacks: Callback subclasses, duck-typed objects, add_callback, LambdaCallback."""

from __future__ import annotations

import functools

import trainhooks


def test_keras_style_duck_typed_object(make_trainer, loaders) -> None:
    class Plain:  # no base class, no markers
        def __init__(self):
            self.epochs: list[int] = []

        def on_train_epoch_end(self, trainer):
            self.epochs.append(trainer.epoch)

        def helper(self):  # not a hook: ignored
            return 1

    cb = Plain()
    trainer = make_trainer(callbacks=[cb], epochs=3)
    trainer.fit(*loaders)
    assert cb.epochs == [0, 1, 2]
    assert trainer.plugin_manager.records["Plain"].source == "callback"


def test_base_callback_stubs_are_not_registered(make_trainer) -> None:
    class Only(trainhooks.BaseCallback):
        def on_train_end(self, trainer):
            pass

    trainer = make_trainer(callbacks=[Only()])
    assert trainer.plugin_manager.plugin_hooks("Only") == ["on_train_end"]
    assert trainer.plugin_manager.call_order("on_train_batch_end") == []


def test_add_callback_forms(make_trainer, loaders) -> None:
    seen: dict[str, object] = {}
    trainer = make_trainer(epochs=1)
    trainer.add_callback("on_train_start", lambda t: seen.setdefault("lambda", t))
    trainer.add_callback("on_train_batch_end", lambda batch_idx, trainer: seen.setdefault("named", batch_idx))

    class Counter:
        def __init__(self):
            self.n = 0

        def __call__(self, trainer):
            self.n += 1

    counter = Counter()
    trainer.add_callback("on_train_epoch_end", counter)
    trainer.add_callback("on_fit_epoch_end", functools.partial(lambda tag, trainer: seen.setdefault(tag, 1), "partial"))
    trainer.fit(*loaders)
    assert seen["lambda"] is trainer and seen["named"] == 0 and seen["partial"] == 1
    assert counter.n == 1


def test_lambda_callback_one_liner(make_trainer, loaders) -> None:
    ends: list[float] = []
    trainer = make_trainer(
        callbacks=[
            trainhooks.LambdaCallback(on_fit_epoch_end=lambda trainer: ends.append(trainer.metrics["val/loss"]))
        ],
        epochs=2,
    )
    trainer.fit(*loaders)
    assert len(ends) == 2


def test_callback_state_dict_is_saved_in_checkpoints(make_trainer, loaders, tmp_path) -> None:
    class Stateful(trainhooks.Callback):
        def __init__(self):
            self.count = 0

        def on_train_batch_end(self, trainer):
            self.count += 1

        def state_dict(self):
            return {"count": self.count}

        def load_state_dict(self, state):
            self.count = state["count"]

    cb = Stateful()
    trainer = make_trainer(callbacks=[cb], epochs=1)
    trainer.fit(*loaders)
    path = trainer.save_checkpoint(tmp_path / "ck.pt")
    fresh = Stateful()
    other = make_trainer(callbacks=[fresh], epochs=1)
    other.load_checkpoint(path)
    assert fresh.count == 3


def test_rank_zero_only_is_skipped_on_other_ranks(make_trainer, loaders, monkeypatch) -> None:
    calls: list[str] = []

    class Everywhere(trainhooks.Callback):
        def on_train_start(self, trainer):
            calls.append("everywhere")

    class Logger(trainhooks.Callback):
        rank_zero_only = True

        def on_train_start(self, trainer):
            calls.append("rank0")

    class Marked:
        @trainhooks.hookimpl(rank_zero_only=True)
        def on_train_start(self, trainer):
            calls.append("marked-rank0")

    monkeypatch.setenv("RANK", "1")
    trainer = make_trainer(callbacks=[Everywhere(), Logger()], plugins=[Marked()], epochs=1)
    assert not trainer.is_global_zero
    trainer.fit(*loaders)
    assert calls == ["everywhere"]
    monkeypatch.setenv("RANK", "0")
    calls.clear()
    trainer = make_trainer(callbacks=[Everywhere(), Logger()], plugins=[Marked()], epochs=1)
    trainer.fit(*loaders)
    assert calls == ["marked-rank0", "everywhere", "rank0"]
