"""The plugin manager decides what loads from metadata alone (a pure function, table-tested), then loads.

The real-process tests pip-install plugin distributions into the session's venv side directory
and check that a refused or skipped plugin's code never ran.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from trainhooks.plugin_manager import AUTOLOAD_ENV, Decision, EntryPointSpec, Switches, decide

from .conftest import PluginEnv, write_plugin_package


def spec(name: str, dist: str = "th-x") -> EntryPointSpec:
    ep = metadata.EntryPoint(name, f"{dist.replace('-', '_')}.plugin", "trainhooks")
    return EntryPointSpec(name, ep.value, dist, "0.1.0", ep)


BUILTIN = spec("checkpoint", "trainhooks")
THIRD = spec("fancy", "th-fancy")

# (switches, entry point, expected action, expected status, words in the reason)
TABLE = [
    (Switches(), BUILTIN, "load", "active", ""),
    (Switches(), THIRD, "load", "active", ""),
    (Switches(disable=frozenset({"checkpoint"})), BUILTIN, "skip", "disabled", "-p no:checkpoint"),
    (Switches(disable=frozenset({"fancy"})), THIRD, "skip", "disabled", "-p no:fancy"),
    (Switches(autoload=False), BUILTIN, "load", "active", ""),  # built-ins load either way
    (Switches(autoload=False), THIRD, "skip", "not loaded", AUTOLOAD_ENV),
    (Switches(autoload=False, enable=frozenset({"fancy"})), THIRD, "load", "active", ""),
    (Switches(allow=frozenset({"other"})), THIRD, "skip", "not loaded", "TRAINHOOKS_PLUGINS"),
    (Switches(allow=frozenset({"fancy"})), THIRD, "load", "active", ""),
    (Switches(allow=frozenset()), BUILTIN, "load", "active", ""),
    (Switches(defaults=False), BUILTIN, "skip", "not loaded", "default plugins off; use -p checkpoint"),
    (Switches(defaults=False, enable=frozenset({"checkpoint"})), BUILTIN, "load", "active", ""),
    (Switches(defaults=False, enable=frozenset({"fancy"}), autoload=False), THIRD, "load", "active", ""),
    (Switches(enable=frozenset({"fancy"}), disable=frozenset({"fancy"})), THIRD, "skip", "disabled", ""),
]


@pytest.mark.parametrize(("switches", "entry", "action", "status", "reason"), TABLE)
def test_decision_table(switches: Switches, entry: EntryPointSpec, action: str, status: str, reason: str) -> None:
    (decision,) = decide([entry], switches)
    assert (decision.action, decision.status) == (action, status)
    assert reason in decision.reason


DUP_A, DUP_B = spec("dup", "th-dup-a"), spec("dup", "th-dup-b")


@pytest.mark.parametrize(
    ("switches", "action"),
    [
        (Switches(), "refuse"),
        (Switches(enable=frozenset({"dup"}), autoload=False), "refuse"),
        (Switches(autoload=False), "skip"),  # neither would load: the run is not refused
        (Switches(disable=frozenset({"dup"})), "skip"),
        (Switches(allow=frozenset({"other"})), "skip"),
    ],
)
def test_two_distributions_declaring_one_name(switches: Switches, action: str) -> None:
    decisions = decide([THIRD, DUP_A, DUP_B], switches)
    assert decisions[0] == decide([THIRD], switches)[0]
    assert {d.action for d in decisions[1:]} == {action}
    if action == "refuse":
        assert all("'dup' is declared by both th-dup-a and th-dup-b" in d.reason for d in decisions[1:])


def test_decide_is_pure() -> None:
    switches = Switches(autoload=False)
    assert decide([THIRD, DUP_A, DUP_B], switches) == decide([THIRD, DUP_A, DUP_B], switches)
    assert isinstance(decide([BUILTIN], switches)[0], Decision)


# ---------------------------------------------------------------------- real distributions
MARKER_SOURCE = """\
import os
import pathlib

pathlib.Path(os.environ["TH_MARKERS"], {tag!r}).touch()  # proves the module was imported

import trainhooks


@trainhooks.hookimpl
def on_train_start(trainer):
    pass
"""


@pytest.fixture(scope="module")
def dup_site(plugin_env: PluginEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dup-pkgs")
    target = tmp_path_factory.mktemp("dup-site")
    for dist, module in (("th-dup-a", "th_dup_a"), ("th-dup-b", "th_dup_b")):
        pkg = write_plugin_package(root, dist, module, MARKER_SOURCE.format(tag=module), entry_points={"dup": module})
        plugin_env.pip_install(pkg, target=target)
    solo = write_plugin_package(root, "th-solo", "th_solo", MARKER_SOURCE.format(tag="th_solo"))
    plugin_env.pip_install(solo, target=target)
    return target


@pytest.mark.slow
def test_a_duplicate_name_is_refused_without_importing_either(
    plugin_env: PluginEnv, dup_site: Path, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {"TH_MARKERS": str(markers)}
    proc = plugin_env.run(
        ["fit", "--epochs", "1", "--save-dir", str(tmp_path / "r"), "-p", "no:th-solo"], env=env, extra_path=[dup_site]
    )
    assert proc.returncode != 0, proc.stderr
    assert "plugin name 'dup' is declared by both th-dup-a and th-dup-b; uninstall one of them" in proc.stderr
    assert sorted(p.name for p in markers.iterdir()) == []  # neither module ran

    # Autoload off: neither would load, so the run goes on (and still imports neither).
    proc = plugin_env.run(
        ["fit", "--epochs", "1", "--save-dir", str(tmp_path / "r2"), "--quiet"],
        env={**env, AUTOLOAD_ENV: "1"},
        extra_path=[dup_site],
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in markers.iterdir()) == []


@pytest.mark.slow
def test_plugins_shows_where_unloaded_plugins_live_without_importing_them(
    plugin_env: PluginEnv, dup_site: Path, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = plugin_env.run(
        ["plugins", "--json"], env={"TH_MARKERS": str(markers), AUTOLOAD_ENV: "1"}, extra_path=[dup_site]
    )
    assert proc.returncode == 0, proc.stderr
    listed = {(p["name"], p["distribution"]): p for p in json.loads(proc.stdout)}
    solo = listed[("th-solo", "th-solo")]
    assert solo["status"] == "not loaded"
    assert solo["location"] == str(dup_site / "th_solo.py")
    assert sorted(p.name for p in markers.iterdir()) == []
