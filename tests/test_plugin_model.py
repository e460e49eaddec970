"""The plugin model: several instances of one plugin, settings declared once (trainhooks.Option),
fresh run state every fit (on_fit_start), state per instance on resume, trainhooks.Monitor.

Real trainers on real digits; nothing is mocked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

import trainhooks
from trainhooks import cli
from trainhooks.checkpointing import load_checkpoint
from trainhooks.plugins.checkpoint import ModelCheckpoint
from trainhooks.plugins.early_stopping import EarlyStopping
from trainhooks.plugins.lr_scheduler import LRScheduler
from trainhooks.plugins.nan_guard import NaNGuard
from trainhooks.plugins.notify import Notify
from trainhooks.plugins.tensorboard import TensorBoard
from trainhooks.plugins.timer import Timer


def sgd(lr: float) -> Any:
    return lambda params: torch.optim.SGD(params, lr=lr)


def never_improves(name: str, patience: int, metric: str = "val/loss") -> EarlyStopping:
    """Stops after exactly ``patience + 1`` epochs: nothing improves by 10."""
    return EarlyStopping(name=name, monitor=metric, patience=patience, min_delta=10.0)


# ----------------------------------------------------------------------- several instances
@pytest.mark.parametrize("order", ["a_first", "b_first"])
@pytest.mark.parametrize("stopper", ["a", "b"])
def test_two_early_stoppings_on_different_metrics_stop_on_whichever_asks_first(
    make_trainer, loaders, order: str, stopper: str
) -> None:
    a = never_improves("on_loss", 1 if stopper == "a" else 3, "val/loss")
    b = never_improves("on_acc", 1 if stopper == "b" else 3, "val/acc")
    first, second = (a, b) if order == "a_first" else (b, a)
    # One through plugins=, one through callbacks=: the case that used to fail on --patience.
    trainer = make_trainer(plugins=[first], callbacks=[second], optimizer=sgd(0.5), epochs=10)
    result = trainer.fit(*loaders)
    expected = a if stopper == "a" else b
    assert result.epochs_completed == 2
    assert result.stopped_by == ("on_loss" if expected is a else "on_acc")
    assert result.stop_reason.startswith("val/loss" if expected is a else "val/acc")
    assert a.monitor.mode == "min" and b.monitor.mode == "max"


def test_unnamed_instances_get_the_documented_default_names(make_trainer) -> None:
    trainer = make_trainer(plugins=[EarlyStopping(), EarlyStopping(monitor="val/acc")], callbacks=[EarlyStopping()])
    names = [r.name for r in trainer.plugin_manager.active()]
    assert names == ["EarlyStopping", "EarlyStopping#2", "EarlyStopping#3"]


def test_the_first_instance_of_a_default_plugin_replaces_it_and_keeps_its_name(tmp_path) -> None:
    best = ModelCheckpoint(name="best")
    periodic = ModelCheckpoint(name="periodic", every_n_steps=2, save_top_k=0, dirpath="periodic")
    trainer = trainhooks.Trainer(
        torch.nn.Linear(64, 10), loss_fn=torch.nn.CrossEntropyLoss(), plugins=[best, periodic], save_dir=tmp_path
    )
    plugin_manager = trainer.plugin_manager
    assert plugin_manager.get_plugin("best") is best and plugin_manager.get_plugin("periodic") is periodic
    assert plugin_manager.get_plugin("checkpoint") is None  # replaced, not run a third time
    assert sum(isinstance(p, ModelCheckpoint) for _, p in plugin_manager.list_name_plugin()) == 2


class StepsSaved(trainhooks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.saves: list[tuple[str, int]] = []

    def on_model_save(self, trainer: trainhooks.Trainer, path: Path) -> None:
        # Writes happen behind training: on_model_save fires once the file is durable, possibly
        # some steps later, so the step is the one the file holds, not the trainer's current one.
        step = torch.load(path, map_location="cpu", weights_only=True)["global_step"]
        self.saves.append((f"{path.parent.name}/{path.name}", int(step)))


def test_best_by_val_loss_plus_every_n_steps_checkpoints_in_one_run(make_trainer, loaders, tmp_path) -> None:
    best = ModelCheckpoint(name="best", monitor="val/loss")
    periodic = ModelCheckpoint(name="periodic", every_n_steps=2, save_top_k=0, dirpath="periodic")
    saves = StepsSaved()
    trainer = make_trainer(plugins=[best, periodic], callbacks=[saves], optimizer=sgd(0.5), epochs=3)
    result = trainer.fit(*loaders)  # 3 batches per epoch: steps 1..9
    run = tmp_path / "run"
    assert (run / "weights" / "best.pt").is_file() and (run / "weights" / "last.pt").is_file()
    assert not (run / "periodic" / "best.pt").exists()  # save_top_k=0: that instance keeps no best
    mid_epoch = [step for where, step in saves.saves if where == "periodic/last.pt" and step % 3]
    assert mid_epoch == [2, 4, 8]  # every 2 steps, mid-epoch ones (6 is also an epoch end)
    ckpt = load_checkpoint(run / "weights" / "best.pt")
    assert set(ckpt["plugins"]) == {"best", "periodic"}
    assert ckpt["plugins"]["best"]["monitor"]["best"] == min(h["val/loss"] for h in result.history)
    assert ckpt["plugins"]["periodic"]["monitor"]["best"] is None


def test_each_instance_gets_its_own_state_back_on_resume(make_trainer, loaders, tmp_path) -> None:
    def stoppers() -> tuple[EarlyStopping, EarlyStopping]:
        return (
            EarlyStopping(name="on_loss", monitor="val/loss", patience=50, min_delta=10.0),
            EarlyStopping(name="on_acc", monitor="val/acc", patience=50),
        )

    a, b = stoppers()
    first = make_trainer(plugins=[a, b, ModelCheckpoint()], optimizer=sgd(0.5), epochs=2)
    first.fit(*loaders)
    assert a.wait == 1 and a.monitor.best == first.history[0]["val/loss"]
    assert b.monitor.best == max(h["val/acc"] for h in first.history)

    c, d = stoppers()  # reversed registration order: names, not positions, decide
    second = make_trainer(plugins=[d, c, ModelCheckpoint()], optimizer=sgd(0.5), epochs=3)
    second.fit(*loaders, resume=tmp_path / "run" / "weights" / "last.pt")
    assert c.monitor.best == first.history[0]["val/loss"] and c.wait == 2  # counted on from 1
    assert d.monitor.best == max(h["val/acc"] for h in second.history)
    assert d.monitor.metric == "val/acc" and c.monitor.metric == "val/loss"


def test_resuming_with_state_for_a_plugin_that_is_not_registered_warns_naming_it(
    make_trainer, loaders, tmp_path
) -> None:
    make_trainer(plugins=[EarlyStopping(name="stopper", patience=50), ModelCheckpoint()], epochs=1).fit(*loaders)
    trainer = make_trainer(plugins=[ModelCheckpoint()], epochs=2)
    with pytest.warns(UserWarning, match=r"holds state for plugin\(s\) 'stopper', which are not registered"):
        trainer.fit(*loaders, resume=tmp_path / "run" / "weights" / "last.pt")


def test_instances_share_their_class_options_and_keep_their_own_values(make_trainer) -> None:
    a, b = EarlyStopping(name="a"), EarlyStopping(name="b", patience=7)
    trainer = make_trainer(plugins=[a, b], options={"patience": 2, "es_monitor": "val/acc"})
    assert trainer.options["patience"] == 2
    assert (a.patience, b.patience) == (2, 7)  # a constructor value wins for its instance
    assert a.monitor.metric == b.monitor.metric == "val/acc"


# ------------------------------------------------------------------ fresh state every fit
def test_a_second_fit_with_reused_callbacks_behaves_like_the_first(make_trainer, loaders, tmp_path) -> None:
    es = never_improves("stopper", 1)
    trainer = make_trainer(plugins=[es], optimizer=sgd(0.5), epochs=10)
    first = trainer.fit(*loaders)
    again = trainer.fit(*loaders)  # same trainer
    other = make_trainer(plugins=[es], optimizer=sgd(0.5), epochs=10, save_dir=tmp_path / "other").fit(*loaders)
    for result in (first, again, other):
        assert result.epochs_completed == 2 and result.stopped_by == "stopper"
        assert result.stop_reason.startswith("val/loss did not improve for 1 epochs")
        assert f"best {result.history[0]['val/loss']:.6g} at epoch 1" in result.stop_reason


class PlateauSeen(trainhooks.Callback):
    def on_train_start(self, trainer: trainhooks.Trainer) -> None:
        sched = trainer.lr_scheduler
        self.seen = (sched.best, sched.num_bad_epochs)


def test_a_second_fit_starts_reduce_lr_on_plateau_afresh(make_trainer, loaders) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # nothing improves: bad epochs pile up
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=100)
    seen = PlateauSeen()
    trainer = make_trainer(model=model, optimizer=opt, lr_scheduler=sched, plugins=[LRScheduler()], callbacks=[seen])
    trainer.fit(*loaders)
    assert sched.num_bad_epochs == 1 and sched.best < float("inf")
    trainer.fit(*loaders)
    assert seen.seen == (float("inf"), 0)


def test_a_second_fit_starts_checkpoint_top_k_timer_and_nan_guard_afresh(make_trainer, loaders, tmp_path) -> None:
    ckpt, timer, guard = ModelCheckpoint(save_top_k=2), Timer(max_time=3600), NaNGuard()
    make_trainer(plugins=[ckpt, timer, guard], optimizer=sgd(0.5), epochs=2).fit(*loaders)
    assert len(ckpt.top) == 2 and timer.elapsed() > 0
    guard.reason = "left over"  # as if the first run had stopped on a NaN
    trainer = make_trainer(plugins=[ckpt, timer, guard], optimizer=sgd(0.5), epochs=1, save_dir=tmp_path / "b")
    second_started = time.monotonic()
    result = trainer.fit(*loaders)
    used = timer.elapsed()
    since = time.monotonic() - second_started
    assert result.epochs_completed == 1 and not result.stopped_early
    assert [name for _, _, name in ckpt.top] == ["epoch1.pt"]
    assert sorted(p.name for p in (tmp_path / "b" / "weights").glob("epoch*.pt")) == ["epoch1.pt"]
    # A fresh budget: the timer counts no more than the second fit's own time (a baseline from
    # this very run, not a wall-clock bound), so nothing of the first run was carried over.
    assert timer.elapsed_before == 0.0 and 0 < used <= since


# ---------------------------------------------------------------------- settings declared once
BAD_VALUES = [
    (ModelCheckpoint, {"every_n_steps": 0.15}, r"'ModelCheckpoint': setting every_n_steps \(--save-every-n-steps\) must be an integer >= 0, got 0.15"),
    (ModelCheckpoint, {"every_n_steps": 2.7}, r"every_n_steps .* must be an integer >= 0, got 2.7"),
    (ModelCheckpoint, {"every_n_steps": "batch"}, r"every_n_steps .* must be an integer >= 0, got 'batch'"),
    (ModelCheckpoint, {"every_n_steps": True}, r"every_n_steps .* must be an integer >= 0, got True"),
    (ModelCheckpoint, {"every_n_steps": -1}, r"every_n_steps .* must be an integer >= 0, got -1"),
    (ModelCheckpoint, {"save_top_k": -2}, r"setting save_top_k must be an integer >= -1, got -2"),
    (ModelCheckpoint, {"dirpath": ""}, r"setting dirpath \(--ckpt-dir\) must be a path, got '': an empty path"),
    (ModelCheckpoint, {"mode": "best"}, r"setting mode \(--ckpt-mode\) must be one of 'auto', 'min', 'max', got 'best'"),
    (ModelCheckpoint, {"monitor": ""}, r"setting monitor \(--ckpt-monitor\) must be a string, got '': empty"),
    (ModelCheckpoint, {"monitr": "val/acc"}, r"has no setting 'monitr' \(did you mean monitor\?\)"),
    (ModelCheckpoint, {"ckpt_monitor": "val/acc"}, r"no setting 'ckpt_monitor' \(the constructor argument is 'monitor'\)"),
    (EarlyStopping, {"patience": 2.5}, r"'EarlyStopping': setting patience must be an integer >= 0, got 2.5"),
    (EarlyStopping, {"patience": -1}, r"setting patience must be an integer >= 0, got -1"),
    (EarlyStopping, {"min_delta": "small"}, r"setting min_delta must be a number >= 0, got 'small'"),
    (EarlyStopping, {"stop_at": [0.9]}, r"setting stop_at must be a number, got \[0.9\]"),
    (NaNGuard, {"check_every": 0}, r"setting check_every \(--nan-check-every\) must be an integer >= 1, got 0"),
    (Timer, {"max_time": "soon"}, r"setting max_time must be a duration .*, got 'soon': timer: cannot read"),
    (Notify, {"events": "train_end,oops"}, r"setting events \(--notify-events\) .* got 'train_end,oops': unknown event"),
    (Notify, {"retries": 1.5}, r"setting retries \(--notify-retries\) must be an integer >= 0, got 1.5"),
    (TensorBoard, {"graph": "maybe"}, r"setting graph \(--tb-graph\) must be true or false, got 'maybe'"),
    (TensorBoard, {"log_dir": ""}, r"setting log_dir \(--tb-dir\) must be a path, got ''"),
    (LRScheduler, {"interval": "batch"}, r"setting interval \(--lr-interval\) must be one of 'auto', 'epoch', 'step'"),
]  # fmt: skip


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD_VALUES, ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_bad_setting_values_are_refused_when_the_plugin_is_built(cls, kwargs, message) -> None:
    with pytest.raises(trainhooks.ConfigError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"save_every_n_steps": 0.15}, r"plugin 'ModelCheckpoint': setting every_n_steps .* got 0.15"),
        ({"save_every_n_steps": "batch"}, r"setting every_n_steps .* must be an integer >= 0, got 'batch'"),
        ({"save_top_k": "2.7"}, r"setting save_top_k must be an integer >= -1, got '2.7'"),
        ({"ckpt_dir": ""}, r"setting dirpath \(--ckpt-dir\) must be a path, got ''"),
    ],
)
def test_bad_option_values_are_refused_by_the_trainer(make_trainer, options, message) -> None:
    with pytest.raises(trainhooks.ConfigError, match=message):
        make_trainer(plugins=[ModelCheckpoint()], options=options)


def test_integral_values_are_accepted_as_integers() -> None:
    assert ModelCheckpoint(every_n_steps=4.0).every_n_steps == 4
    assert ModelCheckpoint(every_n_steps="4").every_n_steps == 4
    assert EarlyStopping(min_delta=1).min_delta == 1.0


def test_bad_values_on_the_command_line_are_usage_errors(tmp_path, capsys) -> None:
    code = None
    try:
        code = cli.main(["fit", "--save-every-n-steps", "0.15", "--save-dir", str(tmp_path), "--quiet"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert "setting every_n_steps (--save-every-n-steps) must be an integer >= 0, got '0.15'" in capsys.readouterr().err


def test_an_empty_save_dir_is_an_error(make_trainer) -> None:
    with pytest.raises(trainhooks.ConfigError, match="save_dir must be a directory path, got ''"):
        make_trainer(save_dir="")


def test_an_empty_resume_is_an_error_before_anything_is_written(make_trainer, loaders, tmp_path) -> None:
    trainer = make_trainer(save_dir=tmp_path / "run")
    with pytest.raises(trainhooks.ConfigError, match="resume expects a checkpoint file or 'auto', got ''"):
        trainer.fit(*loaders, resume="")
    assert not (tmp_path / "run").exists()


def test_a_third_party_plugin_declares_its_settings_once(make_trainer, loaders) -> None:
    class EveryN(trainhooks.Callback):
        every = trainhooks.Option(int, 2, "log every N steps", min=1, flag="everyn-every")
        tag = trainhooks.Option(str, "loss", "metric name to log")

        def on_fit_start(self, trainer: trainhooks.Trainer) -> None:
            self.logged: list[int] = []

        def on_train_batch_end(self, trainer: trainhooks.Trainer) -> None:
            if trainer.global_step % self.every == 0:
                self.logged.append(trainer.global_step)

    plugin = EveryN()
    trainer = make_trainer(plugins=[plugin], options={"everyn_every": "3"})
    assert trainer.options["everyn_every"] == 3 and plugin.every == 3 and plugin.tag == "loss"
    trainer.fit(*loaders)
    assert plugin.logged == [3, 6]
    with pytest.raises(
        trainhooks.ConfigError, match=r"'EveryN': setting every \(--everyn-every\) must be an integer >= 1"
    ):
        EveryN(every=0)
    assert EveryN(5, "acc").every == 5  # positional, in declaration order


# ------------------------------------------------------------------------------ Monitor
def test_monitor_is_public_and_tracks_the_best_value() -> None:
    watch = trainhooks.Monitor("val/acc", min_delta=0.01)
    assert watch.mode == "max" and watch.best is None and not watch.improved
    assert watch.update(0.5, 0) and watch.improved and watch.best == 0.5
    assert not watch.update(0.505, 1) and not watch.improved  # not by more than min_delta
    assert watch.update(0.6, 2) and watch.best_epoch == 2
    assert not watch.update(float("nan"), 3)
    watch.reset()
    assert watch.best is None and watch.best_epoch is None
    assert trainhooks.Monitor("val/loss").mode == "min"
    with pytest.raises(trainhooks.ConfigError, match="min_delta must be a number >= 0"):
        trainhooks.Monitor("val/loss", min_delta=-1)
    with pytest.raises(trainhooks.ConfigError, match="mode must be 'min', 'max' or 'auto'"):
        trainhooks.Monitor("val/loss", mode="lowest")
