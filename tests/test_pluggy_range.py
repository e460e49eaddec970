"""The dispatch-equivalence tests pass on the oldest and the newest pluggy ``pyproject.toml`` allows.

pluggy's private names are used in one module (``trainhooks.pluggy_compat``); this runs
``tests/test_dispatch_equivalence.py`` (and the plugin manager's ordering tests) in a subprocess against
each bound of the allowed range, installed for real from the package index into a temporary
directory put first on ``sys.path``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def allowed_range() -> tuple[str, str]:
    """(``pluggy==LOWEST``, ``pluggy>=A,<B``) from pyproject's dependency on pluggy."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(d for d in deps if re.match(r"pluggy\b", d))
    lowest = re.search(r">=\s*([\d.]+)", spec)
    assert lowest, f"pluggy's lower bound must be pinned with >=: {spec!r}"
    return f"pluggy=={lowest.group(1)}", spec.replace(" ", "")


def test_the_range_has_both_bounds() -> None:
    lowest, spec = allowed_range()
    assert lowest == "pluggy==1.5" and spec == "pluggy>=1.5,<2"


@pytest.mark.slow
@pytest.mark.parametrize("bound", ["oldest", "newest"])
def test_dispatch_is_equivalent_on_each_bound_of_the_pluggy_range(bound: str, tmp_path: Path) -> None:
    lowest, spec = allowed_range()
    requirement = lowest if bound == "oldest" else spec
    target = tmp_path / "pluggy"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), requirement],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if pip.returncode != 0:
        pytest.skip(f"cannot install {requirement} from the package index: {pip.stderr.strip()[-300:]}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pluggy, trainhooks.pluggy_compat as c; print(pluggy.__file__, c.PLUGGY_VERSION)",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    where, version = probe.stdout.split()
    assert where.startswith(str(target)), where
    if bound == "oldest":
        assert version.startswith(lowest.split("==")[1]), version
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(REPO / "tests" / "test_dispatch_equivalence.py"),
            str(REPO / "tests" / "test_ordering.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert run.returncode == 0, f"pluggy {version}:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
