"""``trainhooks.resume.plan_resume``: where a resumed run starts, as a table of cases.

A pure function of plain facts about the checkpoint and the new run: no trainer, no files.
"""

from __future__ import annotations

import pytest

from trainhooks.errors import ConfigError
from trainhooks.resume import CheckpointFacts, ResumePlan, RunFacts, plan_resume


def ckpt(**facts) -> CheckpointFacts:
    facts.setdefault("path", "last.pt")
    facts.setdefault("epoch", 2)
    return CheckpointFacts(**facts)


CASES = [
    # (case, checkpoint facts, run facts, start epoch, mode, kept history rows, warnings matching)
    ("finished epoch: the next one", ckpt(), RunFacts(epochs=5), 3, "next-epoch", None, []),
    (
        "epoch cut short without a position: it trains again",
        ckpt(epoch_completed=False),
        RunFacts(epochs=5),
        2,
        "restart-epoch",
        None,
        [],
    ),
    (
        "mid-epoch: replay and skip, the unfinished row goes",
        ckpt(epoch_completed=False, has_progress=True, batch_size=32),
        RunFacts(epochs=5, batch_size=32),
        2,
        "mid-epoch",
        2,
        [],
    ),
    (
        "mid-epoch with another batch size: the epoch starts over",
        ckpt(epoch_completed=False, has_progress=True, batch_size=32),
        RunFacts(epochs=5, batch_size=64),
        2,
        "restart-epoch",
        2,
        ["batch size 32", "starts over"],
    ),
    (
        "mid-epoch with another world size: the epoch starts over",
        ckpt(epoch_completed=False, has_progress=True, world_size=2),
        RunFacts(epochs=5, world_size=1),
        2,
        "restart-epoch",
        2,
        ["2 processes"],
    ),
    (
        "another seed: a warning that says which to use",
        ckpt(seed=7),
        RunFacts(epochs=5, seed=0),
        3,
        "next-epoch",
        None,
        ["seed 7", "--seed 7"],
    ),
    (
        "another epoch count with a scheduler: its schedule is the saved one",
        ckpt(epochs=4, has_scheduler=True),
        RunFacts(epochs=8),
        3,
        "next-epoch",
        None,
        ["planned for 4 epochs"],
    ),
    (
        "another epoch count, no scheduler: nothing to say",
        ckpt(epochs=4),
        RunFacts(epochs=8),
        3,
        "next-epoch",
        None,
        [],
    ),
    (
        "stopped by a signal: resumable",
        ckpt(stop_reason="interrupted by SIGTERM", stopped_by="signal", epoch_completed=False),
        RunFacts(epochs=5),
        2,
        "restart-epoch",
        None,
        [],
    ),
    (
        "a budget stop (the timer): resumable",
        ckpt(stop_reason="time budget", stopped_by="timer", stop_resumable=True),
        RunFacts(epochs=5),
        3,
        "next-epoch",
        None,
        [],
    ),
    (
        "max_steps reached before, a larger max_steps now",
        ckpt(stop_reason="reached max_steps (10 steps)", global_step=10, epoch_completed=False),
        RunFacts(epochs=5, max_steps=20),
        2,
        "restart-epoch",
        None,
        [],
    ),
]


@pytest.mark.parametrize(("case", "facts", "run", "start", "mode", "keep", "warned"), CASES, ids=[c[0] for c in CASES])
def test_resume_plan(case, facts, run, start, mode, keep, warned) -> None:
    plan = plan_resume(facts, run)
    assert (plan.start_epoch, plan.mode, plan.keep_history) == (start, mode, keep)
    text = " ".join(plan.warnings)
    for fragment in warned:
        assert fragment in text
    if not warned:
        assert plan.warnings == ()
    assert isinstance(plan, ResumePlan)


REFUSED = [
    (
        "an early stop finished the run",
        ckpt(stop_reason="no improvement", stopped_by="early_stopping"),
        RunFacts(epochs=5),
        "already finished",
    ),
    ("every epoch is done", ckpt(epoch=4), RunFacts(epochs=5), "already completed 5 of 5 epochs"),
    (
        "more epochs done than this run has",
        ckpt(epoch=4),
        RunFacts(epochs=2),
        r"already completed 5 epochs, more than this run.s 2; pass more epochs \(--epochs N with N > 5\)",
    ),
    (
        "mid-epoch checkpoint past the epochs",
        ckpt(epoch=5, epoch_completed=False, has_progress=True),
        RunFacts(epochs=5),
        "only 5 epochs",
    ),
    ("max_steps already reached", ckpt(global_step=30), RunFacts(epochs=5, max_steps=30), "max_steps=30"),
]


@pytest.mark.parametrize(("case", "facts", "run", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_resume_plan_refuses(case, facts, run, message) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        plan_resume(facts, run)
    assert "last.pt" in str(info.value)  # the message names the file


def test_facts_from_a_checkpoint_dict() -> None:
    facts = CheckpointFacts.of(
        {"epoch": 1, "epoch_completed": False, "progress": {"batch_size": 16, "batches_done": 3}, "seed": 3},
        "w/last.pt",
    )
    assert (facts.epoch, facts.epoch_completed, facts.has_progress, facts.batch_size, facts.seed) == (
        1,
        False,
        True,
        16,
        3,
    )
