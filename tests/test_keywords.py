"""A wrong keyword to the public API is one error that names the right keyword."""

from __future__ import annotations

import inspect

import pytest
import torch

import trainhooks
from trainhooks import Trainer
from trainhooks.vocabulary import PEER_KEYWORDS


def make(**kwargs) -> Trainer:
    model = torch.nn.Linear(2, 2)
    return Trainer(model, loss_fn=torch.nn.MSELoss(), verbose=False, default_plugins=False, autoload=False, **kwargs)


@pytest.mark.parametrize(
    ("typo", "right"),
    [
        ("accumulate_grad_batch", "accumulate_grad_batches"),
        ("max_step", "max_steps"),
        ("limit_train_batch", "limit_train_batches"),
        ("val_every_n_epoch", "val_every_n_epochs"),
        ("deterministc", "deterministic"),
        ("dryrun", "dry_run"),
    ],
)
def test_a_misspelt_trainer_keyword_names_the_right_one(typo: str, right: str) -> None:
    with pytest.raises(
        trainhooks.UnknownKeywordError,
        match=rf"Trainer\(\) got an unexpected keyword argument '{typo}' \(did you mean {right}",
    ) as info:
        make(**{typo: 1})
    assert isinstance(info.value, TypeError) and isinstance(info.value, trainhooks.ConfigError)  # both, as before
    assert info.value.names == [typo]


@pytest.mark.parametrize(
    ("peer", "ours", "framework"),
    [
        ("max_epochs", "epochs", "Lightning"),
        ("gradient_accumulation_steps", "accumulate_grad_batches", "HF"),
        ("check_val_every_n_epoch", "val_every_n_epochs", "Lightning"),
    ],
)
def test_another_frameworks_keyword_names_ours_and_the_framework(peer: str, ours: str, framework: str) -> None:
    with pytest.raises(
        trainhooks.UnknownKeywordError, match=rf"'{peer}' \(did you mean {ours}\? {peer} is the {framework} name\)"
    ):
        make(**{peer: 2})


def test_fit_keywords_are_checked_too_and_every_unknown_one_is_named(tmp_path) -> None:
    trainer = make(save_dir=tmp_path)
    with pytest.raises(
        trainhooks.UnknownKeywordError,
        match=r"Trainer\.fit\(\) got an unexpected keyword argument 'resum' \(did you mean resume\?\)",
    ):
        trainer.fit([], resum="auto")
    with pytest.raises(
        trainhooks.UnknownKeywordError,
        match=r"keyword arguments 'ckpt_path' \(did you mean resume\? ckpt_path is the Lightning name\), 'zzz'$",
    ):
        trainer.fit([], ckpt_path="last.pt", zzz=1)
    assert not (tmp_path / "weights").exists()  # refused before anything ran


def test_the_checked_signatures_are_the_original_ones() -> None:
    assert "accumulate_grad_batches" in inspect.signature(Trainer).parameters
    assert list(inspect.signature(Trainer.fit).parameters) == ["self", "train_data", "val_data", "epochs", "resume"]


def test_every_peer_keyword_names_a_keyword_of_trainer_or_fit() -> None:
    ours = set(inspect.signature(Trainer).parameters) | set(inspect.signature(Trainer.fit).parameters)
    assert {target for target, _ in PEER_KEYWORDS.values()} <= ours
    assert not set(PEER_KEYWORDS) & ours  # a peer's name that is ours too is not a mistake
