"""Shared fixtures: tiny real data, a bare Trainer factory, and one real venv per test run.

The venv (``plugin_env``) is made once per session with ``--system-site-packages`` so torch and
trainhooks are not installed again; plugin packages written by the tests are ``pip install``-ed
into it for real, and commands run in it as subprocesses, so entry points are discovered by
importlib-metadata exactly as on a user's machine.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import textwrap
import venv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from trainhooks import Trainer
from trainhooks.testing import tiny_digits, tiny_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def loaders() -> tuple[Any, Any]:
    """(train, val): 3 training batches and 2 validation batches of real digits."""
    return tiny_digits(n_train=96, n_val=64, batch_size=32)


@pytest.fixture
def late_registrar() -> Callable[[Any, Callable[[Trainer], bool]], Any]:
    """``late_registrar(plugin, when)``: a plugin whose ``on_val_end`` registers ``plugin`` (as
    "late") the first time ``when(trainer)`` holds, for tests of plugins that arrive mid-epoch."""
    import trainhooks

    def make(plugin: Any, when: Callable[[Trainer], bool]) -> Any:
        class Registrar:
            @trainhooks.hookimpl
            def on_val_end(self, trainer: Trainer) -> None:
                if when(trainer) and not trainer.plugin_manager.is_registered(plugin):
                    trainer.plugin_manager.register(plugin, name="late")

        return Registrar()

    return make


@pytest.fixture
def make_trainer(tmp_path: Path) -> Callable[..., Trainer]:
    """A Trainer with no entry-point plugins unless asked for, writing under tmp_path."""

    def make(**kwargs: Any) -> Trainer:
        model = kwargs.pop("model", None) or tiny_model()
        kwargs.setdefault("loss_fn", torch.nn.CrossEntropyLoss())
        kwargs.setdefault("epochs", 2)
        kwargs.setdefault("save_dir", tmp_path / "run")
        kwargs.setdefault("default_plugins", False)
        return Trainer(model, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit the developer's plugin switches."""
    for var in ("TRAINHOOKS_DISABLE_PLUGIN_AUTOLOAD", "TRAINHOOKS_PLUGINS"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------- real plugin packages
def write_plugin_package(
    root: Path,
    dist: str,
    module: str,
    source: str,
    *,
    entry_points: dict[str, str] | None = None,
    version: str = "0.1.0",
) -> Path:
    """Write a minimal pip-installable plugin distribution; returns its directory."""
    pkg = root / dist
    pkg.mkdir(parents=True, exist_ok=True)
    eps = entry_points or {dist: module}
    ep_lines = "\n".join(f'"{name}" = "{target}"' for name, target in eps.items())
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "{version}"
            dependencies = []

            [project.entry-points.trainhooks]
            """
        )
        + ep_lines
        + f'\n\n[tool.setuptools]\npy-modules = ["{module}"]\n'
    )
    (pkg / f"{module}.py").write_text(textwrap.dedent(source))
    return pkg


@dataclass
class PluginEnv:
    """A real virtual environment that sees this interpreter's packages (torch, trainhooks)."""

    root: Path
    python: Path

    def pip_install(self, path: Path, *, target: Path | None = None) -> None:
        cmd = [str(self.python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet", str(path)]
        if target is not None:
            cmd += ["--target", str(target)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"pip install {path} failed:\n{proc.stdout}\n{proc.stderr}"

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        extra_path: Sequence[Path] = (),
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m trainhooks ARGS`` in the venv."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHOOKS_")}
        full_env.update(env or {})
        full_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in extra_path)
        return subprocess.run(
            [str(self.python), "-m", "trainhooks", *args],
            capture_output=True,
            text=True,
            cwd=cwd,
            env=full_env,
            timeout=timeout,
        )


def _make_venv(root: Path) -> PluginEnv:
    venv.EnvBuilder(system_site_packages=True, with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # --system-site-packages exposes the *base* interpreter's packages. When the tests themselves
    # run inside a venv, expose that venv's site-packages too (processing its .pth files, which
    # carry the editable install of trainhooks).
    if sys.prefix != sys.base_prefix:
        parents = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
        lines = [f"import site; site.addsitedir({p!r})" for p in dict.fromkeys(parents) if Path(p).is_dir()]
        (purelib / "_trainhooks_parent_env.pth").write_text("\n".join(lines) + "\n")
    return PluginEnv(root=root, python=python)


@pytest.fixture(scope="session")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginEnv]:
    """One real venv for the whole test run (pip-installed test plugins go here)."""
    root = tmp_path_factory.mktemp("plugin-venv") / "venv"
    env = _make_venv(root)
    check = subprocess.run(
        [str(env.python), "-c", "import torch, trainhooks, pip; print(trainhooks.__file__)"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, f"venv cannot import torch/trainhooks/pip:\n{check.stderr}"
    yield env


__all__ = ["REPO", "PluginEnv", "write_plugin_package"]
