"""The benchmark suite runs end to end (quickly, without Lightning or Ignite); speed is not tested here."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from benchmarks import measure, report, run
from benchmarks.loops import LOOPS_BY_KEY, EpochClock, Loop
from benchmarks.workloads import WORKLOADS


def test_quick_run_prints_every_table_and_skips_missing_peers(capsys, tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    assert run.main(["--quick", "--no-peers", "--rounds", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.strip() in capsys.readouterr().out
    for key in ("plain-dl", "plain-pre", "plain-fast", "th-bare-dl", "th-noop", "th-default"):
        assert LOOPS_BY_KEY[key].label in text
    assert "| tiny | no plugins within 3% of the plain loop (DataLoader) | 1.03 |" in text
    assert "python " in text and "torch" in text and "--quick` smoke run" in text
    assert "each in a thread of one process" in text
    assert "| CPU time stolen by the hypervisor |" in text


def test_stolen_cpu_time_is_a_share_of_the_ticks_between_two_readings() -> None:
    assert report.stolen_share((1000, 10), (2000, 60)) == pytest.approx(0.05)
    assert report.stolen_share(None, (2000, 60)) is None
    assert report.stolen_share((1000, 10), (1000, 10)) is None  # no time passed: no share
    ticks = report.cpu_ticks()
    if Path("/proc/stat").exists():
        assert ticks is not None and 0 <= ticks[1] <= ticks[0]


def test_a_missing_framework_is_reported_as_skipped() -> None:
    ghost = Loop(
        "ghost", "a framework that is not installed", "dataloader", lambda *a: None, requires="no_such_mod_xyz"
    )
    results = measure.lockstep([LOOPS_BY_KEY["plain-pre"], ghost], WORKLOADS["tiny"], rounds=1)
    assert results["ghost"].skipped and "no_such_mod_xyz not installed" in results["ghost"].skipped
    assert len(results["plain-pre"].whole) == 1 and results["plain-pre"].whole[0] > 0
    table = "\n".join(report.timing_table("tiny", results))
    assert "skipped: no_such_mod_xyz not installed" in table


def test_lockstep_reports_a_failing_loop() -> None:
    def broken(wl, epochs, clock: EpochClock) -> None:
        clock.epoch()
        raise ValueError("broken loop")

    with pytest.raises(RuntimeError, match="bad failed") as info:
        measure.lockstep([Loop("bad", "bad", "dataloader", broken)], WORKLOADS["tiny"], rounds=1)
    assert isinstance(info.value.__cause__, ValueError)


def test_dummy_plugin_distributions_are_discovered(tmp_path: Path, monkeypatch) -> None:
    from trainhooks.plugin_manager import discover_entry_points

    measure.write_dummy_plugins(tmp_path, 3)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    found = {spec.name: spec for spec in discover_entry_points()}
    assert {"dummy0", "dummy1", "dummy2"} <= set(found)
    assert found["dummy2"].distribution == "trainhooks-dummy2"
    assert found["dummy2"].entry_point.load().__name__ == "trainhooks_dummy2"


def test_targets_are_evaluated_from_per_round_ratios() -> None:
    ref = measure.Timing("plain-dl", whole=[100.0, 200.0, 100.0], steps=[100.0, 200.0, 100.0])
    mine = measure.Timing("th-bare-dl", whole=[102.0, 204.0, 110.0], steps=[101.0, 202.0, 101.0])
    # a ratio of medians would say 204/200 = 1.02 too, but 110/100 in round 3 must not count
    rows = {t.loop + t.reference: r for t, *r in report.evaluate({"tiny": {"plain-dl": ref, "th-bare-dl": mine}})}
    whole, steps, best, verdict = rows["th-bare-dlplain-dl"]
    assert whole == pytest.approx(1.02) and steps == pytest.approx(1.01) and verdict == "met"
    assert best == pytest.approx(1.02)


def test_pieces_times_every_variant_in_the_same_rounds(capsys) -> None:
    from benchmarks import pieces

    assert pieces.main(["--rounds", "2", "--data", "dataloader"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny, dataloader data, 2 rounds, 57 steps per epoch")
    rows = {line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    assert rows == {"variant", "trainhooks", *pieces.VARIANTS}
    times = pieces.measure(rounds=2)  # fast data: every variant got one epoch per round after the warm-up
    assert {len(v) for v in times.values()} == {2} and all(t > 0 for v in times.values() for t in v)


def test_pieces_refuses_a_round_count_below_one(capsys) -> None:
    from benchmarks import pieces

    with pytest.raises(SystemExit):
        pieces.main(["--rounds", "0"])
    assert "--rounds must be at least 1, got 0" in capsys.readouterr().err
