"""trainhooks' pytest plugin: fixtures for testing trainhooks plugins.

Installing trainhooks registers this module with pytest through the ``pytest11`` entry point
(as pytest-xdist or pytest-cov do), so any test suite run where trainhooks is installed can
use:

``trainhooks_tester``
    A :class:`~trainhooks.testing.TrainhooksTester` writing under the test's ``tmp_path``. Its
    ``fit`` / ``validate`` / ``predict`` run a tiny but real training (an MLP on scikit-learn's
    digits, a fraction of a second on a CPU) with only the plugins you pass and a recorder of
    every hook call, and return a :class:`~trainhooks.testing.RunResult`::

        import my_plugin

        def test_my_plugin_reports_every_epoch(trainhooks_tester, capsys):
            result = trainhooks_tester.fit(my_plugin, epochs=2)
            assert result.count("on_fit_epoch_end") == 2
            assert "epoch 2/2" in capsys.readouterr().out

        def test_installed_entry_point(trainhooks_tester):
            result = trainhooks_tester.fit("my_plugin")  # loaded by entry-point name
            assert result.plugin_hooks("my_plugin") == ["on_fit_epoch_end", "should_stop"]

This module is imported at the start of every pytest session in such an environment, also
those that never use it, so it imports nothing heavy: torch, scikit-learn and the engine load
when a fixture is first used. ``pytest -p no:trainhooks`` turns it off.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from trainhooks.testing import TrainhooksTester


@pytest.fixture
def trainhooks_tester(tmp_path: Path) -> TrainhooksTester:
    """Run tiny real fits/validations/predictions with your plugins; see :class:`~trainhooks.testing.TrainhooksTester`."""
    from trainhooks.testing import TrainhooksTester

    return TrainhooksTester(tmp_path / "trainhooks")
