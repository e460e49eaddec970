"""README and docs stay true: the CI command, the hook reference, the plugin example."""

from __future__ import annotations

import re
import types
from typing import Any

import pytest

from trainhooks.cli import hook_reference_markdown

from .conftest import REPO


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) >= 2, "README must start with the main-job and the test commands"
    main_job, tests = blocks[0].strip(), blocks[1].strip()
    assert main_job.endswith("trainhooks fit")
    assert tests.endswith("python3 -m pytest -n 2")  # two workers: the 2-core CI in under 20 minutes
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_hook_reference_is_generated_and_current() -> None:
    current = (REPO / "docs" / "hooks.md").read_text()
    assert current == hook_reference_markdown(), "run: trainhooks hooks --markdown > docs/hooks.md"


def test_readme_hook_table_names_real_hooks() -> None:
    from trainhooks.callbacks import hook_signatures

    readme = (REPO / "README.md").read_text()
    table = readme.split("## Hooks", 1)[1].split("## Command line", 1)[0]
    mentioned = set(re.findall(r"`(on_\w+|should_stop|teardown|configure|add_options|export_\w+)`", table))
    assert mentioned <= set(hook_signatures()) | {"on_pretrain_routine_start"}


def test_every_builtin_plugin_and_option_is_documented() -> None:
    from trainhooks.options import collect_options
    from trainhooks.plugin_manager import PluginManager

    text = (REPO / "docs" / "plugins.md").read_text()
    plugin_manager = PluginManager()
    plugin_manager.load_plugins(strict=True)
    for name, rec in plugin_manager.records.items():
        if rec.source == "builtin":
            assert f"`{name}`" in text, f"plugin {name} is not documented in docs/plugins.md"
    for spec in collect_options(plugin_manager).specs.values():
        if plugin_manager.records[spec.plugin].source != "builtin":
            continue  # installed third-party plugins (integrations/) document themselves
        assert spec.flags[0] in text, f"option {spec.flags[0]} of {spec.plugin} is not documented"


def test_readme_links_the_plugin_guide() -> None:
    readme = (REPO / "README.md").read_text()
    docs = readme.split("## Documentation", 1)[1].split("\n## ", 1)[0]
    assert "(docs/plugin-guide.md)" in docs and (REPO / "docs" / "plugin-guide.md").is_file()


def _guide_blocks() -> list[str]:
    guide = (REPO / "docs" / "plugin-guide.md").read_text()
    return re.findall(r"```python\n(.*?)```", guide, flags=re.S)


def _guide_plugins() -> list[tuple[str, str]]:
    """(id, source) of every guide example that defines a plugin (the testing example aside)."""
    found = []
    for i, block in enumerate(_guide_blocks()):
        if "trainhooks_tester" not in block and ("hookimpl" in block or "trainhooks.Callback" in block):
            name = re.search(r"^(?:class|def) (\w+)", block, flags=re.M)
            found.append((f"{i}-{name.group(1) if name else 'block'}", block))
    return found


def test_every_guide_example_is_python() -> None:
    blocks = _guide_blocks()
    assert len(blocks) >= 10
    for block in blocks:
        compile(block, "docs/plugin-guide.md", "exec")


@pytest.mark.parametrize(("example", "source"), _guide_plugins(), ids=[i for i, _ in _guide_plugins()])
def test_guide_example_plugins_run(example: str, source: str, trainhooks_tester: Any) -> None:
    # Each example is registered exactly as written (hook names and arguments validated) and fit.
    module = types.ModuleType(f"guide_example_{example.replace('-', '_')}")
    exec(compile(source, f"docs/plugin-guide.md ({example})", "exec"), module.__dict__)
    classes = [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]
    plugin = classes[0]() if classes else module
    result = trainhooks_tester.fit(plugin, epochs=2)
    name = result.plugins[0]
    assert result.plugin_hooks(name), f"the example registered no hooks: {source}"
    assert result.fit_result.epochs_completed == 2
    state = plugin.state_dict() if hasattr(plugin, "state_dict") else None
    if state:  # the checkpoint example: its state travels under the plugin's name
        assert result.trainer.state_checkpoint()["plugins"][name] == state
