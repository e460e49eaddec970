"""The public API is typed: mypy checks the package as it is installed (``trainhooks/`` with its
``hookspecs`` and ``plugins`` subpackages), including the typed hook facade the engine calls."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow


def test_mypy_is_clean_on_the_installed_layout(tmp_path: Path) -> None:
    if (
        shutil.which("mypy") is None
        and subprocess.run([sys.executable, "-m", "mypy", "--version"], capture_output=True).returncode
    ):
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    # The repository maps core/ -> trainhooks, hookspecs/ -> trainhooks.hookspecs, plugins/ ->
    # trainhooks.plugins; mypy needs the wheel's layout, so mirror it with symlinks.
    pkg = tmp_path / "trainhooks"
    pkg.mkdir()
    for path in (REPO / "core").iterdir():
        if path.suffix in (".py", ".typed") or (path.is_dir() and (path / "__init__.py").is_file()):
            (pkg / path.name).symlink_to(path)  # modules and subpackages (trainhooks.cli)
    (pkg / "hookspecs").symlink_to(REPO / "hookspecs")
    (pkg / "plugins").symlink_to(REPO / "plugins")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "-p",
            "trainhooks",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        # A cold mypy run over torch's stubs takes minutes on a busy 2-core machine: the limit
        # is there to end a hang, not to time mypy.
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (REPO / "core" / "py.typed").exists()
