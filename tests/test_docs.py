"""README and docs stay true: the CI command, the hook reference, the plugin example."""

from __future__ import annotations

import re

from trainhooks.cli import hook_reference_markdown

from .conftest import REPO


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) >= 2, "README must start with the main-job and the test commands"
    main_job, tests = blocks[0].strip(), blocks[1].strip()
    assert main_job.endswith("trainhooks fit")
    assert tests.endswith("python3 -m pytest")
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
    from trainhooks.host import PluginHost
    from trainhooks.options import collect_options

    text = (REPO / "docs" / "plugins.md").read_text()
    host = PluginHost()
    host.load_plugins(strict=True)
    for name, rec in host.records.items():
        if rec.source == "builtin":
            assert f"`{name}`" in text, f"plugin {name} is not documented in docs/plugins.md"
    for spec in collect_options(host).specs.values():
        assert spec.flags[0] in text, f"option {spec.flags[0]} of {spec.plugin} is not documented"
