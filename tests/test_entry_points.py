"""Real plugin distributions, pip-installed into a real venv, found through entry points.

One well-behaved package (``th-recorder``) is installed into the session venv; broken ones are
installed with ``pip --target`` into a side directory that only some runs put on PYTHONPATH,
so they never break the other tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainhooks.callbacks import hook_signatures

from .conftest import PluginEnv, write_plugin_package
from .test_fit_loop import expected_fit

pytestmark = pytest.mark.slow


def recorder_source() -> str:
    """A module-style plugin implementing every hook, appending one JSON line per call."""
    lines = [
        "import json, os",
        "import trainhooks",
        "",
        "def _summary(value):",
        "    if hasattr(value, 'shape'):",
        "        return {'shape': list(value.shape)}",
        "    if isinstance(value, (list, tuple)):",
        "        return [_summary(v) for v in value]",
        "    if isinstance(value, dict):",
        "        return {k: _summary(v) for k, v in value.items()}",
        "    if isinstance(value, (int, float, str, bool)) or value is None:",
        "        return value",
        "    return type(value).__name__",
        "",
        "def _record(hook, **kwargs):",
        "    path = os.environ.get('TH_RECORD')",
        "    if path:",
        "        with open(path, 'a') as fh:",
        "            fh.write(json.dumps({'hook': hook, 'args': {k: _summary(v) for k, v in kwargs.items()}}) + '\\n')",
        "",
    ]
    for name, args in hook_signatures().items():
        params = ", ".join(args)
        passed = ", ".join(f"{a}={a}" for a in args)
        lines += ["@trainhooks.hookimpl", f"def {name}({params}):", f"    _record({name!r}, {passed})", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def recorder_env(plugin_env: PluginEnv, tmp_path_factory: pytest.TempPathFactory) -> PluginEnv:
    root = tmp_path_factory.mktemp("pkgs")
    pkg = write_plugin_package(
        root, "th-recorder", "th_recorder", recorder_source(), entry_points={"recorder": "th_recorder"}, version="1.2.3"
    )
    plugin_env.pip_install(pkg)
    return plugin_env


@pytest.fixture(scope="module")
def broken_site(plugin_env: PluginEnv, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Broken plugin distributions (five fail to load, one fails in a hook), pip-installed into a
    side directory."""
    root = tmp_path_factory.mktemp("broken-pkgs")
    target = tmp_path_factory.mktemp("broken-site")
    packages = [
        write_plugin_package(
            root,
            "th-broken",
            "th_broken",
            "raise ImportError('No module named fancy_dependency')\n",
            entry_points={"broken": "th_broken"},
        ),
        write_plugin_package(
            root,
            "th-typo",
            "th_typo",
            "import trainhooks\n\n@trainhooks.hookimpl\ndef on_epoch_end(trainer):\n    pass\n",
            entry_points={"typo": "th_typo"},
        ),
        write_plugin_package(
            root,
            "th-badarg",
            "th_badarg",
            "import trainhooks\n\n@trainhooks.hookimpl\ndef on_train_batch_end(trainer, batch, batch_index):\n    pass\n",
            entry_points={"badarg": "th_badarg"},
        ),
        write_plugin_package(
            root, "th-noattr", "th_noattr", "X = 1\n", entry_points={"noattr": "th_noattr:DoesNotExist"}
        ),
        write_plugin_package(
            root,
            "th-exiter",
            "th_exiter",
            "import sys\n\nsys.exit('plugin called sys.exit at import')\n",
            entry_points={"exiter": "th_exiter"},
        ),
        write_plugin_package(
            root,
            "th-boom",
            "th_boom",
            "import trainhooks\n\n@trainhooks.hookimpl\ndef on_train_epoch_end(trainer):\n    raise RuntimeError('boom')\n",
            entry_points={"boom": "th_boom"},
        ),
    ]
    for pkg in packages:
        plugin_env.pip_install(pkg, target=target)
    return target


LOAD_BROKEN = ("broken", "typo", "badarg", "noattr", "exiter")
ALL_BROKEN = (*LOAD_BROKEN, "boom")


def without(*keep: str) -> list[str]:
    return [arg for name in ALL_BROKEN if name not in keep for arg in ("-p", f"no:{name}")]


def read_record(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_plugins_lists_the_installed_distribution(recorder_env: PluginEnv) -> None:
    proc = recorder_env.run(["plugins", "--json"])
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    rec = plugins["recorder"]
    assert rec["distribution"] == "th-recorder" and rec["version"] == "1.2.3"
    assert rec["source"] == "entrypoint" and rec["status"] == "active" and rec["target"] == "th_recorder"
    assert rec["hooks"] == list(hook_signatures())
    assert rec["location"].endswith("th_recorder.py")
    assert plugins["torchscript"]["source"] == "builtin"
    text = recorder_env.run(["plugins"]).stdout
    assert "recorder" in text and "th-recorder" in text and "1.2.3" in text


def test_fit_calls_the_plugin_in_documented_order(recorder_env: PluginEnv, tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    proc = recorder_env.run(
        # --log-every-n-steps beyond the run's 90 steps: on_log fires only with the epochs' rows,
        # as expected_fit lists it (the per-step calls are tested in tests/test_loop_controls.py).
        ["fit", "--epochs", "2", "--save-dir", str(tmp_path / "run"), "--log-every-n-steps", "1000"],
        env={"TH_RECORD": str(record)},
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    calls = read_record(record)
    # The default checkpoint plugin saves during on_fit_epoch_end: those hooks nest inside it.
    saving = ("on_save_checkpoint", "on_model_save")
    names = [c["hook"] for c in calls if c["hook"] not in saving]
    # digits: 1437 training samples in batches of 32 -> 45 batches; 360 validation samples in 256s -> 2.
    assert names == ["add_options", "configure", *expected_fit(2, 45, 2)]
    assert sum(c["hook"] == "on_model_save" for c in calls) >= 2  # last.pt each epoch, best.pt too
    by_hook: dict[str, list[dict]] = {}
    for call in calls:
        by_hook.setdefault(call["hook"], []).append(call["args"])
    start = by_hook["on_train_batch_start"]
    assert start[0]["batch"] == [{"shape": [32, 64]}, {"shape": [32]}]
    assert [a["batch_idx"] for a in start[:45]] == list(range(45))
    assert start[0]["trainer"] == "Trainer"
    assert by_hook["on_before_backward"][0]["loss"] == {"shape": []}
    assert by_hook["on_before_optimizer_step"][0]["optimizer"] == "Adam"
    assert by_hook["on_train_batch_end"][0]["outputs"]["loss"] == {"shape": []}
    assert by_hook["on_val_batch_end"][0]["outputs"]["preds"] == {"shape": [256, 10]}
    assert by_hook["teardown"] == [{"trainer": "Trainer", "stage": "fit"}]
    assert by_hook["add_options"][0]["parser"] == "OptionGroup"


def test_disable_by_flag_and_by_environment(recorder_env: PluginEnv, tmp_path: Path) -> None:
    record = tmp_path / "calls.jsonl"
    env = {"TH_RECORD": str(record)}
    proc = recorder_env.run(["fit", "--epochs", "1", "--save-dir", str(tmp_path / "a"), "-p", "no:recorder"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert not record.exists()

    listing = recorder_env.run(["plugins", "--json", "-p", "no:recorder"])
    status = {p["name"]: p for p in json.loads(listing.stdout)}["recorder"]
    assert status["status"] == "disabled" and "-p no:recorder" in status["reason"]

    off = {**env, "TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = recorder_env.run(["fit", "--epochs", "1", "--save-dir", str(tmp_path / "b")], env=off)
    assert proc.returncode == 0, proc.stderr
    assert not record.exists()
    listing = recorder_env.run(["plugins", "--json"], env=off)
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    assert plugins["recorder"]["status"] == "not loaded" and "autoload off" in plugins["recorder"]["reason"]
    assert plugins["torchscript"]["status"] == "active"  # built-ins are part of trainhooks

    # Named explicitly, it loads even with autoload off (as with pytest's -p).
    proc = recorder_env.run(["fit", "--epochs", "1", "--save-dir", str(tmp_path / "c"), "-p", "recorder"], env=off)
    assert proc.returncode == 0, proc.stderr
    assert "on_train_end" in [c["hook"] for c in read_record(record)]


def test_allowlist_environment_variable(recorder_env: PluginEnv) -> None:
    listing = recorder_env.run(["plugins", "--json"], env={"TRAINHOOKS_PLUGINS": "someother"})
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    assert plugins["recorder"]["status"] == "not loaded" and "TRAINHOOKS_PLUGINS" in plugins["recorder"]["reason"]
    listing = recorder_env.run(["plugins", "--json"], env={"TRAINHOOKS_PLUGINS": "someother,recorder"})
    assert {p["name"]: p for p in json.loads(listing.stdout)}["recorder"]["status"] == "active"


def test_plugins_command_survives_broken_plugins(recorder_env: PluginEnv, broken_site: Path) -> None:
    proc = recorder_env.run(["plugins"], extra_path=[broken_site])
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    for name in ALL_BROKEN:
        assert name in proc.stdout
    proc = recorder_env.run(["plugins", "--json"], extra_path=[broken_site])
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    assert plugins["recorder"]["status"] == "active" and plugins["boom"]["status"] == "active"
    for name in LOAD_BROKEN:
        assert plugins[name]["status"] == "error", name
    assert "SystemExit: plugin called sys.exit at import" in plugins["exiter"]["reason"]
    assert "fancy_dependency" in plugins["broken"]["reason"] and "th-broken 0.1.0" in plugins["broken"]["reason"]
    assert "did you mean on_fit_epoch_end / on_train_epoch_end?" in plugins["typo"]["reason"]
    assert "'batch_index'" in plugins["badarg"]["reason"]
    assert "DoesNotExist" in plugins["noattr"]["reason"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "broken",
            "plugin 'broken' (entry point 'th_broken' from th-broken 0.1.0) failed to load: ImportError: No module named fancy_dependency. '-p no:broken' lets the run go on without it; or uninstall th-broken",
        ),
        (
            "typo",
            "plugin 'typo' (from th-typo 0.1.0) implements 'on_epoch_end' (th_typo.on_epoch_end), which is not a trainhooks hook (did you mean on_fit_epoch_end / on_train_epoch_end?)",
        ),
        (
            "badarg",
            "plugin 'badarg' (from th-badarg 0.1.0): argument 'batch_index' of on_train_batch_end (th_badarg.on_train_batch_end) is not an argument of hook 'on_train_batch_end' (did you mean batch_idx",
        ),
        (
            "noattr",
            "plugin 'noattr' (entry point 'th_noattr:DoesNotExist' from th-noattr 0.1.0) failed to load: AttributeError",
        ),
        (
            "exiter",
            "plugin 'exiter' (entry point 'th_exiter' from th-exiter 0.1.0) failed to load: SystemExit: plugin called sys.exit at import",
        ),
        (
            "boom",
            "plugin 'boom' (from th-boom 0.1.0) failed in hook 'on_train_epoch_end': RuntimeError: boom",
        ),
    ],
)
def test_fit_with_a_broken_plugin_names_it(
    recorder_env: PluginEnv, broken_site: Path, tmp_path: Path, name: str, expected: str
) -> None:
    proc = recorder_env.run(
        ["fit", "--epochs", "1", "--save-dir", str(tmp_path / "r"), *without(name)], extra_path=[broken_site]
    )
    assert proc.returncode != 0
    assert expected in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("trainhooks: error:")
    # Installed, not the user's code: every such error says how to train anyway.
    assert f"'-p no:{name}' lets the run go on without it" in proc.stderr.strip().splitlines()[-1]
    if name == "boom":  # a failure inside a hook shows where in the plugin's code, nothing of ours
        assert 'th_boom.py", line 5, in on_train_epoch_end' in proc.stderr and "trainhooks/" not in proc.stderr
    else:  # a plugin that cannot load: the one line says it all
        assert "Traceback" not in proc.stderr


def test_disabling_the_broken_plugin_lets_fit_run(recorder_env: PluginEnv, broken_site: Path, tmp_path: Path) -> None:
    proc = recorder_env.run(
        ["fit", "--epochs", "1", "--save-dir", str(tmp_path / "r"), *without()], extra_path=[broken_site]
    )
    assert proc.returncode == 0, proc.stderr
    assert "Training finished" in proc.stdout
