"""The plugin authoring kit for real: bake plugin-template/, pip install, list, fit, run its tests.

Three bakes are shared by the slow tests (module-scoped):

* ``default_pkg`` — cookiecutter's own API, no answers given: the template's defaults
  (plugin ``hello``, hooks ``on_fit_epoch_end,should_stop``, MIT);
* ``custom_pkg`` — cookiecutter's API with a non-default answer set (names, author without
  e-mail, version, hooks ``on_train_epoch_end,on_train_end,should_stop``, Apache-2.0);
* ``every_hook_pkg`` — ``trainhooks new-plugin`` with every hook and BSD-3-Clause.

The first two are ``pip install``-ed into the session's venv (``plugin_env``), where they stay
for later tests: their hooks only print, their ``should_stop`` abstains unless the learning rate
falls below 1e-6 with epochs to go, and their names are their own. The every-hook package prints at every stage, so it goes
into a side directory (``pip --target``) that only its own runs put on the path.
"""

from __future__ import annotations

import ast
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainhooks import loopmap, newplugin
from trainhooks.callbacks import hook_signatures
from trainhooks.cli import main
from trainhooks.newplugin import template_context, template_dir

from .conftest import REPO, PluginEnv

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (tomli is in the dev extra there)
    import tomli as tomllib

TEMPLATE = REPO / "plugin-template"
PROJECT = "{{cookiecutter.project_slug}}"
CUSTOM_ANSWERS = {
    "plugin_name": "epoch-logger",
    "module_name": "epoch_logger_plugin",
    "project_slug": "th-epoch-logger",
    "author": "Grace Hopper",
    "email": "",
    "description": "Logs every epoch and stops runs whose loss diverges.",
    "version": "2.3.1",
    "hooks": "on_train_epoch_end, on_train_end,should_stop",
    "license": "Apache-2.0",
}


@pytest.fixture
def cookiecutter_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cookiecutter user config of our own: replay files go to a temporary directory, not ~."""
    return _cookiecutter_config(tmp_path_factory.mktemp("cc"), monkeypatch)


def _cookiecutter_config(root: Path, monkeypatch: pytest.MonkeyPatch, **default_context: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "replay_dir": str(root / "replay"),
                "cookiecutters_dir": str(root / "cookiecutters"),
                "default_context": default_context,
            }
        )
    )
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(config))
    return config


def hookimpls(module_file: Path) -> list[str]:
    """Names of the functions decorated with ``@trainhooks.hookimpl`` (with or without options)."""
    tree = ast.parse(module_file.read_text())
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if ast.unparse(target) == "trainhooks.hookimpl":
                    found.append(node.name)
    return found


def new_plugin(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["new-plugin", *args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------- fast checks
def test_template_hook_signatures_are_trainhooks_hooks() -> None:
    # The template's pre-generation hook and its Jinja code use this table; it must not drift.
    table = template_context(TEMPLATE)["_hook_signatures"]
    assert list(table) == list(hook_signatures())
    assert {k: tuple(v) for k, v in table.items()} == hook_signatures()


def test_the_template_is_found_in_the_checkout() -> None:
    # Editable install / source checkout: the package data is plugin-template/ itself (one copy).
    assert template_dir() == TEMPLATE
    assert (TEMPLATE / "cookiecutter.json").is_file() and (TEMPLATE / PROJECT).is_dir()


def test_new_plugin_bakes_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, cookiecutter_config: Path
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"new-plugin tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    code, out, err = new_plugin(
        capsys, "sparkle", "-o", str(tmp_path), "--hooks", "on_train_start, teardown", "--author", "Ada", "--email", ""
    )
    assert code == 0, err
    pkg = tmp_path / "trainhooks-sparkle"
    assert f"Created {pkg} (plugin 'sparkle', module trainhooks_sparkle, hooks: on_train_start, teardown)" in out
    assert 'python -m pip install -e ".[test]"' in out and "python -m pytest" in out
    assert hookimpls(pkg / "src" / "trainhooks_sparkle" / "__init__.py") == ["on_train_start", "teardown"]
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    assert meta["project"]["authors"] == [{"name": "Ada"}]
    assert meta["project"]["entry-points"]["trainhooks"] == {"sparkle": "trainhooks_sparkle"}
    # This trainhooks' own source (here an editable checkout) is what the plugin's CI installs.
    requirement = (pkg / "trainhooks-requirement.txt").read_text().splitlines()[-1]
    assert requirement == newplugin.installed_requirement() != "trainhooks"
    assert requirement.startswith("trainhooks @ file://") and "trainhooks-requirement.txt names a local path" in out
    assert list((cookiecutter_config.parent / "replay").iterdir()), "cookiecutter's replay went elsewhere"


def test_new_plugin_reports_every_bad_answer_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cookiecutter_config: Path
) -> None:
    code, out, err = new_plugin(
        capsys,
        "9lives",
        "-o",
        str(tmp_path),
        "--module",
        "my-module",
        "--dist=-bad-",
        "--hooks",
        "on_epoch_end,teardwn",
        "--plugin-version",
        "one",
        "--email",
        "nobody",
        "--description",
        'say "hi"',
    )
    assert code == 2 and out == ""
    assert err.startswith("trainhooks: error: invalid plugin answers:")
    for expected in (
        "plugin_name '9lives' is not a valid plugin name",
        "module_name 'my-module' is not a valid Python module name",
        "project_slug '-bad-' is not a valid distribution name",
        "version 'one' is not a PEP 440 version",
        "email 'nobody' is not an e-mail address",
        "description 'say \"hi\"' must be one line without",
        "hooks: 'on_epoch_end' is not a trainhooks hook (did you mean on_fit_epoch_end / on_train_epoch_end?)",
        "hooks: 'teardwn' is not a trainhooks hook (did you mean teardown?)",
    ):
        assert expected in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ok", "--module", "class"], "module_name 'class' is a Python keyword"),
        (["ok", "--module", "json"], "module_name 'json' would shadow an existing module"),
        (["ok", "--hooks", " , "], "hooks: name at least one hook"),
        (
            ["ok", "--license", "GPL-3.0"],
            "license 'GPL-3.0' is not offered by the template; choose one of: MIT, Apache-2.0",
        ),
        (["no:thing"], "plugin_name 'no:thing' is not a valid plugin name"),
    ],
)
def test_new_plugin_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cookiecutter_config: Path, args: list[str], message: str
) -> None:
    code, _, err = new_plugin(capsys, *args, "-o", str(tmp_path))
    assert code == 2 and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_new_plugin_will_not_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cookiecutter_config: Path
) -> None:
    (tmp_path / "trainhooks-taken").mkdir()
    (tmp_path / "trainhooks-taken" / "keep.txt").write_text("mine")
    code, _, err = new_plugin(capsys, "taken", "-o", str(tmp_path))
    assert code == 2
    assert f"trainhooks: error: {tmp_path / 'trainhooks-taken'} already exists" in err
    assert [p.name for p in (tmp_path / "trainhooks-taken").iterdir()] == ["keep.txt"]


def test_new_plugin_without_cookiecutter_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "cookiecutter" or m.startswith("cookiecutter.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cookiecutter", None)  # makes `import cookiecutter` fail
    code, _, err = new_plugin(capsys, "x", "-o", str(tmp_path))
    assert code == 2
    assert "trainhooks new-plugin needs cookiecutter, which is not installed" in err
    assert 'python -m pip install "trainhooks[template]"' in err


def test_user_config_defaults_apply_and_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ~/.cookiecutterrc's default_context works as with cookiecutter; its values are checked too.
    _cookiecutter_config(tmp_path / "cc", monkeypatch, author="Config Author", email="config@example.org")
    code, _, err = new_plugin(capsys, "cfg", "-o", str(tmp_path / "out"))
    assert code == 0, err
    meta = tomllib.loads((tmp_path / "out" / "trainhooks-cfg" / "pyproject.toml").read_text())
    assert meta["project"]["authors"] == [{"name": "Config Author", "email": "config@example.org"}]
    _cookiecutter_config(tmp_path / "cc2", monkeypatch, email="not-an-email")
    code, _, err = new_plugin(capsys, "cfg2", "-o", str(tmp_path / "out"))
    assert code == 2 and "email 'not-an-email' is not an e-mail address" in err


def test_cookiecutter_runs_the_same_checks(tmp_path: Path, cookiecutter_config: Path) -> None:
    # `cookiecutter plugin-template/` without trainhooks' CLI: the pre-generation hook refuses.
    from cookiecutter.exceptions import FailedHookException
    from cookiecutter.main import cookiecutter

    with pytest.raises(FailedHookException):
        cookiecutter(
            str(TEMPLATE),
            no_input=True,
            output_dir=str(tmp_path),
            extra_context={"module_name": "not valid", "hooks": "on_train_end,on_epoch_end"},
        )
    assert list(tmp_path.iterdir()) == []  # cookiecutter removed the half-made directory


def test_interactive_new_plugin_asks_the_questions(tmp_path: Path, cookiecutter_config: Path) -> None:
    # plugin name, distribution, module, description, author, e-mail, version, trainhooks source,
    # hooks, license
    answers = ["chatty", "", "", "", "", "", "0.2.0", "", "on_train_end", "3"]
    env = {**os.environ, "COOKIECUTTER_CONFIG": str(cookiecutter_config)}
    proc = subprocess.run(
        [sys.executable, "-m", "trainhooks", "new-plugin", "x", "--interactive", "-o", str(tmp_path)],
        input="\n".join(answers) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Plugin name" in proc.stdout and "Hooks to start from" in proc.stdout
    assert (
        "Created" in proc.stdout and "(plugin 'chatty', module trainhooks_chatty, hooks: on_train_end)" in proc.stdout
    )
    meta = tomllib.loads((tmp_path / "trainhooks-chatty" / "pyproject.toml").read_text())
    assert meta["project"]["version"] == "0.2.0" and meta["project"]["license"] == "BSD-3-Clause"


# ---------------------------------------------------------------------------- real bakes
@dataclass
class Baked:
    path: Path
    plugin: str
    module: str
    dist: str
    version: str
    hooks: list[str]

    @property
    def module_file(self) -> Path:
        return self.path / "src" / self.module / "__init__.py"


def _bake_with_cookiecutter(output: Path, extra: dict[str, str] | None) -> Path:
    from cookiecutter.main import cookiecutter

    return Path(cookiecutter(str(TEMPLATE), no_input=True, output_dir=str(output), extra_context=extra))


@pytest.fixture(scope="module")
def bake_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        _cookiecutter_config(tmp_path_factory.mktemp("cc"), mp)
        yield


@pytest.fixture(scope="module")
def default_pkg(tmp_path_factory: pytest.TempPathFactory, bake_config: None) -> Baked:
    path = _bake_with_cookiecutter(tmp_path_factory.mktemp("default"), None)
    return Baked(path, "hello", "trainhooks_hello", "trainhooks-hello", "0.1.0", ["on_fit_epoch_end", "should_stop"])


@pytest.fixture(scope="module")
def custom_pkg(tmp_path_factory: pytest.TempPathFactory, bake_config: None) -> Baked:
    path = _bake_with_cookiecutter(tmp_path_factory.mktemp("custom"), CUSTOM_ANSWERS)
    hooks = ["on_train_epoch_end", "on_train_end", "should_stop"]
    return Baked(path, "epoch-logger", "epoch_logger_plugin", "th-epoch-logger", "2.3.1", hooks)


@pytest.fixture(scope="module")
def every_hook_pkg(tmp_path_factory: pytest.TempPathFactory, bake_config: None) -> Baked:
    out = tmp_path_factory.mktemp("every")
    hooks = list(hook_signatures())
    code = main(["new-plugin", "every_hook", "-o", str(out), "--hooks", ",".join(hooks), "--license", "BSD-3-Clause"])
    assert code == 0
    return Baked(
        out / "trainhooks-every-hook", "every_hook", "trainhooks_every_hook", "trainhooks-every-hook", "0.1.0", hooks
    )


@pytest.fixture(scope="module")
def installed(plugin_env: PluginEnv, default_pkg: Baked, custom_pkg: Baked) -> PluginEnv:
    """The default and custom bakes, pip-installed (regular, not editable) into the session venv."""
    plugin_env.pip_install(default_pkg.path)
    plugin_env.pip_install(custom_pkg.path)
    return plugin_env


@pytest.fixture(scope="module")
def every_hook_site(plugin_env: PluginEnv, every_hook_pkg: Baked, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("every-site")
    plugin_env.pip_install(every_hook_pkg.path, target=target)
    return target


def run_in_env(
    env: PluginEnv, args: Sequence[str], *, cwd: Path, extra_path: Sequence[Path] = ()
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in the venv (e.g. ``-m pytest``), without the developer's settings."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINHOOKS_", "PYTEST_"))}
    full_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in extra_path)
    return subprocess.run([str(env.python), *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=600)


@pytest.mark.slow
def test_default_bake(default_pkg: Baked) -> None:
    pkg = default_pkg.path
    assert pkg.name == "trainhooks-hello"
    files = sorted(str(p.relative_to(pkg)) for p in pkg.rglob("*") if p.is_file())
    assert files == [
        ".github/workflows/ci.yml",
        ".gitignore",
        "LICENSE",
        "README.md",
        "pyproject.toml",
        "src/trainhooks_hello/__init__.py",
        "src/trainhooks_hello/py.typed",
        "tests/test_trainhooks_hello.py",
        "trainhooks-requirement.txt",
    ]
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "trainhooks-hello" and project["version"] == "0.1.0"
    assert project["dependencies"] == ["trainhooks"]
    assert project["entry-points"]["trainhooks"] == {"hello": "trainhooks_hello"}
    assert any(req.startswith("pytest") for req in project["optional-dependencies"]["test"])
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert project["authors"] == [{"name": "Your Name", "email": "you@example.com"}]
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    license_text = (pkg / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n\nCopyright (c) ")
    assert f"{datetime.datetime.now(datetime.timezone.utc).year} Your Name" in license_text
    assert hookimpls(default_pkg.module_file) == ["on_fit_epoch_end", "should_stop"]
    readme = (pkg / "README.md").read_text()
    assert "python -m pip install trainhooks-hello" in readme and "trainhooks fit -p no:hello" in readme
    # The CI workflow is copied as is (GitHub's ${{ }} must survive Jinja) and is valid YAML.
    ci = pkg / ".github" / "workflows" / "ci.yml"
    assert ci.read_text() == (TEMPLATE / PROJECT / ".github" / "workflows" / "ci.yml").read_text()
    workflow = yaml.safe_load(ci.read_text())
    steps = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert any("torch" in s and "download.pytorch.org/whl/cpu" in s for s in steps)
    assert 'python -m pip install -e ".[test]"' in steps and "python -m pytest" in steps
    # trainhooks is not on PyPI: CI installs it from the requirement the bake recorded, before the plugin.
    install = steps.index("python -m pip install -r trainhooks-requirement.txt")
    assert install < steps.index('python -m pip install -e ".[test]"')
    requirement = (pkg / "trainhooks-requirement.txt").read_text().splitlines()[-1]
    assert requirement == "trainhooks"  # cookiecutter's default; `trainhooks new-plugin` records the source
    assert requirement in readme


@pytest.mark.slow
def test_custom_answers_bake(custom_pkg: Baked) -> None:
    pkg = custom_pkg.path
    assert pkg.name == "th-epoch-logger"
    project = tomllib.loads((pkg / "pyproject.toml").read_text())["project"]
    assert project["name"] == "th-epoch-logger" and project["version"] == "2.3.1"
    assert project["description"] == CUSTOM_ANSWERS["description"]
    assert project["entry-points"]["trainhooks"] == {"epoch-logger": "epoch_logger_plugin"}
    assert project["authors"] == [{"name": "Grace Hopper"}]  # no e-mail given
    assert project["license"] == "Apache-2.0"
    assert (pkg / "LICENSE").read_text().lstrip().startswith("Apache License\n                           Version 2.0")
    assert hookimpls(custom_pkg.module_file) == ["on_train_epoch_end", "on_train_end", "should_stop"]
    assert (pkg / "tests" / "test_epoch_logger_plugin.py").is_file()
    assert CUSTOM_ANSWERS["description"] in custom_pkg.module_file.read_text()


@pytest.mark.slow
def test_every_hook_bake(every_hook_pkg: Baked) -> None:
    assert hookimpls(every_hook_pkg.module_file) == list(hook_signatures())
    assert (every_hook_pkg.path / "LICENSE").read_text().startswith("BSD 3-Clause License")
    # The baked tests expect exactly the hooks trainhooks' loop map fires in every fit.
    tests = (every_hook_pkg.path / "tests" / "test_trainhooks_every_hook.py").read_text()
    fit_hooks = ast.literal_eval(re.search(r"^FIT_HOOKS = (\[.*?\])$", tests, flags=re.S | re.M).group(1))
    setup_and_fit = [*loopmap.LOOPS["setup (Trainer construction)"], *loopmap.LOOPS["fit"]]
    assert fit_hooks == list(dict.fromkeys(loopmap.unroll(setup_and_fit)))


@pytest.mark.slow
@pytest.mark.parametrize("bake", ["default_pkg", "custom_pkg", "every_hook_pkg"])
def test_baked_code_is_ruff_clean(bake: str, request: pytest.FixtureRequest) -> None:
    pkg: Baked = request.getfixturevalue(bake)
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=pkg.path, capture_output=True, text=True)
        assert proc.returncode == 0, f"ruff {' '.join(args)} in {pkg.path}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "hooks", ["export_model", "export_formats", "on_exception", "should_stop", "on_train_start", "add_options"]
)
def test_small_hook_sets_bake_working_ruff_clean_code(tmp_path: Path, bake_config: None, hooks: str) -> None:
    """Either export hook brings its partner (a format must be declared and provided), the
    example option brings the hook that reads it, and any hook set gives code that ruff accepts
    (with the generated settings: 100 columns, E501 on)."""
    path = _bake_with_cookiecutter(tmp_path, {"plugin_name": "small", "hooks": hooks})
    generated = hookimpls(path / "src" / "trainhooks_small" / "__init__.py")
    brings = {"export_model": ["export_formats", "export_model"], "export_formats": ["export_formats", "export_model"]}
    brings["add_options"] = ["add_options", "on_fit_epoch_end"]
    assert generated == brings.get(hooks, [hooks])
    if hooks == "add_options":  # every generated option is read by the generated code
        source = (path / "src" / "trainhooks_small" / "__init__.py").read_text()
        assert "EVERY.declare(parser)" in source and "EVERY.value(trainer)" in source
        assert "trainhooks.Option(" in source  # the setting is declared once, with its check
    assert 'ignore = ["E501"]' not in (path / "pyproject.toml").read_text()
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=path, capture_output=True, text=True)
        assert proc.returncode == 0, f"ruff {' '.join(args)} with hooks={hooks}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.slow
def test_long_answers_still_bake_code_within_the_line_length(tmp_path: Path, bake_config: None) -> None:
    answers = {
        "plugin_name": "a_rather_long_plugin_name_for_a_lint_check",
        "description": "A description long enough to need wrapping in the module docstring, " * 3,
        "hooks": ",".join(hook_signatures()),
    }
    path = _bake_with_cookiecutter(tmp_path, answers)
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=path, capture_output=True, text=True)
        assert proc.returncode == 0, f"ruff {' '.join(args)}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.slow
def test_trainhooks_plugins_lists_the_installed_bakes(
    installed: PluginEnv, default_pkg: Baked, custom_pkg: Baked
) -> None:
    proc = installed.run(["plugins", "--json"])
    assert proc.returncode == 0, proc.stderr
    plugins = {p["name"]: p for p in json.loads(proc.stdout)}
    for baked in (default_pkg, custom_pkg):
        listed = plugins[baked.plugin]
        assert listed["distribution"] == baked.dist and listed["version"] == baked.version
        assert listed["status"] == "active" and listed["source"] == "entrypoint"
        assert listed["target"] == baked.module and listed["hooks"] == baked.hooks
        assert "site-packages" in listed["location"]  # a regular install, not the bake directory
    text = installed.run(["plugins"]).stdout
    assert re.search(r"^epoch-logger\s+active\s+entrypoint\s+th-epoch-logger\s+2\.3\.1\s", text, flags=re.M)


@pytest.mark.slow
def test_trainhooks_fit_calls_the_baked_hooks(installed: PluginEnv, tmp_path: Path) -> None:
    proc = installed.run(["fit", "--epochs", "2", "--save-dir", str(tmp_path / "run")], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("[hello]", "[epoch-logger]"))]
    assert [re.sub(r"[:=].*", "", line) for line in lines] == [
        "[epoch-logger] epoch 1/2",  # on_train_epoch_end runs before validation...
        "[hello] epoch 1/2",  # ...on_fit_epoch_end after it
        "[epoch-logger] epoch 2/2",
        "[hello] epoch 2/2",
        "[epoch-logger] training ended after 2 epochs",
    ]
    assert "[hello] epoch 2/2: lr=" in proc.stdout and "val/acc=" in proc.stdout
    assert "[epoch-logger] training ended after 2 epochs: completed 2 epochs" in proc.stdout
    assert "Training finished after 2 of 2 epochs" in proc.stdout  # should_stop abstained

    off = installed.run(["fit", "--epochs", "1", "--save-dir", str(tmp_path / "off"), "-p", "no:hello"], cwd=tmp_path)
    assert off.returncode == 0, off.stderr
    assert "[hello]" not in off.stdout and "[epoch-logger] epoch 1/1: train/loss=" in off.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("bake", "passed"), [("default_pkg", 5), ("custom_pkg", 5), ("every_hook_pkg", 10)])
def test_the_baked_test_suite_passes(
    bake: str, passed: int, request: pytest.FixtureRequest, plugin_env: PluginEnv
) -> None:
    pkg: Baked = request.getfixturevalue(bake)
    extra: list[Path] = []
    if bake == "every_hook_pkg":
        extra.append(request.getfixturevalue("every_hook_site"))
    else:
        request.getfixturevalue("installed")
    proc = run_in_env(plugin_env, ["-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=pkg.path, extra_path=extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(rf"\b{passed} passed\b", proc.stdout), proc.stdout
    assert "trainhooks_tester" not in proc.stdout  # no "fixture not found": the pytest11 plugin loaded


# ---------------------------------------------------------------------------- the wheel
@pytest.mark.slow
def test_a_wheel_ships_the_template_and_new_plugin_works_from_it(
    plugin_env: PluginEnv, tmp_path: Path, cookiecutter_config: Path
) -> None:
    # Build trainhooks' wheel from a copy of the sources (an in-tree build would leave build/ here).
    src = tmp_path / "src"
    for name in ("core", "hookspecs", "plugins", "plugin-template"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = dist.glob("trainhooks-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n.removeprefix("trainhooks/plugin_template/") for n in zf.namelist() if "plugin_template/" in n}
    in_tree = {
        str(p.relative_to(TEMPLATE)) for p in TEMPLATE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped == in_tree

    site = tmp_path / "site"
    plugin_env.pip_install(wheel, target=site)
    where = run_in_env(
        plugin_env,
        ["-c", "import trainhooks.newplugin as n; print(n.template_dir())"],
        cwd=tmp_path,
        extra_path=[site],
    )
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == site / "trainhooks" / "plugin_template"
    baked = run_in_env(
        plugin_env,
        ["-m", "trainhooks", "new-plugin", "from_wheel", "-o", str(tmp_path / "out"), "--hooks", "on_train_end"],
        cwd=tmp_path,
        extra_path=[site],
    )
    assert baked.returncode == 0, baked.stderr
    module = tmp_path / "out" / "trainhooks-from-wheel" / "src" / "trainhooks_from_wheel" / "__init__.py"
    assert hookimpls(module) == ["on_train_end"]


def test_installed_requirement_reads_pips_direct_url_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A git install names the commit; a local checkout its file URL; an index install the name."""
    import importlib.metadata as md

    record: dict[str, str | None] = {}

    class Dist:
        def read_text(self, name: str) -> str | None:
            return record.get(name)

    monkeypatch.setattr(md, "distributions", lambda name: [Dist()])
    record["direct_url.json"] = json.dumps(
        {"url": "https://example.org/team/trainhooks.git", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}
    )
    assert newplugin.installed_requirement() == "trainhooks @ git+https://example.org/team/trainhooks.git@abc123"
    record["direct_url.json"] = json.dumps({"url": "file:///src/trainhooks", "dir_info": {"editable": True}})
    assert newplugin.installed_requirement() == "trainhooks @ file:///src/trainhooks"
    record.clear()
    assert newplugin.installed_requirement() == "trainhooks"
