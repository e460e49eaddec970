"""``trainhooks new-plugin``: bake the plugin template into a ready-to-install package.

The template is ``plugin-template/`` in the source tree, a plain cookiecutter template, shipped
inside the wheel as the data package ``trainhooks.plugin_template`` (one copy; see
``pyproject.toml``). Baking is offline: the template is local and cookiecutter only renders it.

The answers are checked before cookiecutter runs, by the template's own pre-generation hook
(``hooks/pre_gen_project.py``), imported here: the same rules apply to
``cookiecutter plugin-template/`` and to ``trainhooks new-plugin``, and bad input gives one clear
error instead of a failed hook script and a traceback.

cookiecutter is an optional dependency (``pip install "trainhooks[template]"``): only this
module needs it, and only when baking.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from trainhooks.errors import ConfigError

TEMPLATE_PACKAGE = "trainhooks.plugin_template"
INSTALL_HINT = 'python -m pip install "trainhooks[template]"  (or: python -m pip install cookiecutter)'


def installed_requirement() -> str:
    """How *this* trainhooks was installed, as a pip requirement a new plugin's CI can reuse.

    trainhooks is not on PyPI, so a baked plugin's ``trainhooks-requirement.txt`` (read by its
    CI workflow and README) must name a source. pip records one for every install that did not
    come from an index (PEP 610 ``direct_url.json``): a VCS URL with its commit
    (``trainhooks @ git+https://...@COMMIT``) or a local directory (``trainhooks @ file:///...``,
    usable on this machine only). Installed from an index: plain ``trainhooks``.
    """
    from importlib import metadata

    # The first record that has one: a source checkout's trainhooks.egg-info on sys.path (the
    # current directory) carries no install record and must not hide the installed one.
    raw = next(
        (text for dist in metadata.distributions(name="trainhooks") if (text := dist.read_text("direct_url.json"))),
        None,
    )
    if not raw:
        return "trainhooks"
    try:
        info = json.loads(raw)
    except ValueError:
        return "trainhooks"
    url = str(info.get("url", ""))
    vcs = info.get("vcs_info")
    if isinstance(vcs, dict) and vcs.get("vcs") and url:
        commit = vcs.get("commit_id")
        return f"trainhooks @ {vcs['vcs']}+{url}" + (f"@{commit}" if commit else "")
    return f"trainhooks @ {url}" if url else "trainhooks"


@dataclass(frozen=True)
class BakedPlugin:
    """What :func:`bake` made."""

    path: Path
    """The new project directory."""
    answers: dict[str, str]
    """The template variables used (``plugin_name``, ``module_name``, ``hooks``, ...)."""

    @property
    def plugin_name(self) -> str:
        return self.answers["plugin_name"]

    @property
    def hooks(self) -> list[str]:
        """The hooks generated: those answered, plus the partner of an export hook (the
        template writes ``export_formats`` and ``export_model`` together)."""
        hooks = list(dict.fromkeys(h.strip() for h in self.answers["hooks"].split(",") if h.strip()))
        if "export_model" in hooks or "export_formats" in hooks:
            hooks += [h for h in ("export_formats", "export_model") if h not in hooks]
        return hooks


def template_dir() -> Path:
    """The directory of the cookiecutter template, wherever trainhooks is installed.

    ``plugin-template/`` itself in a source checkout or an editable install; the
    ``trainhooks/plugin_template/`` package data of a wheel.
    """
    spec = importlib.util.find_spec(TEMPLATE_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location)
        if (path / "cookiecutter.json").is_file():
            return path
    raise ConfigError(
        f"the plugin template ({TEMPLATE_PACKAGE}) is missing from this trainhooks installation; "
        "reinstall trainhooks, or bake from a source checkout with: cookiecutter plugin-template/"
    )


def template_context(template: Path | None = None) -> dict[str, Any]:
    """``cookiecutter.json``: the questions, their defaults, and the hook signatures."""
    path = (template or template_dir()) / "cookiecutter.json"
    context: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return context


def _validator(template: Path) -> ModuleType:
    """The template's pre-generation hook, imported as a module (its checks are plain Python)."""
    path = template / "hooks" / "pre_gen_project.py"
    spec = importlib.util.spec_from_file_location("_trainhooks_template_pre_gen", path)
    if spec is None or spec.loader is None:  # pragma: no cover - the file ships with the template
        raise ConfigError(f"cannot load the template's answer checks from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _import_cookiecutter() -> Any:
    try:
        from cookiecutter import main
    except ImportError as exc:
        raise ConfigError(f"trainhooks new-plugin needs cookiecutter, which is not installed: {INSTALL_HINT}") from exc
    return main


def bake(
    plugin_name: str,
    *,
    output_dir: str | Path = ".",
    module_name: str | None = None,
    project_slug: str | None = None,
    author: str | None = None,
    email: str | None = None,
    description: str | None = None,
    version: str | None = None,
    hooks: str | Sequence[str] | None = None,
    license: str | None = None,
    trainhooks_requirement: str | None = None,
    interactive: bool = False,
    template: str | Path | None = None,
) -> BakedPlugin:
    """Bake the plugin template into ``output_dir/<project_slug>``; returns what was made.

    Answers left as None take the template's defaults (``project_slug`` ``trainhooks-<name>``,
    ``module_name`` ``trainhooks_<name>``, hooks ``on_fit_epoch_end,should_stop``, MIT), after the
    user's cookiecutter config (``~/.cookiecutterrc`` ``default_context``), as with cookiecutter.

    :param hooks: hook names to start from, a list or a comma-separated string.
    :param trainhooks_requirement: where the plugin's CI installs trainhooks from, a pip
        requirement (default: :func:`installed_requirement`, how this trainhooks was installed).
    :param interactive: ask every question (the given answers become the proposed defaults);
        otherwise nothing is asked.
    :param template: another template directory (default: the one shipped with trainhooks).
    :raises ConfigError: an invalid answer (all problems in one message), an existing target
        directory, or cookiecutter not installed.
    """
    main = _import_cookiecutter()
    from cookiecutter.config import get_user_config

    template_path = Path(template) if template is not None else template_dir()
    defaults = template_context(template_path)
    if isinstance(hooks, str):
        hooks = [h for h in re.split(r"[,\s]+", hooks) if h]
    given = {
        "plugin_name": plugin_name,
        "module_name": module_name,
        "project_slug": project_slug,
        "author": author,
        "email": email,
        "description": description,
        "version": version,
        "hooks": ",".join(hooks) if hooks is not None else None,
        "license": license,
        "trainhooks_requirement": trainhooks_requirement or installed_requirement(),
    }
    extra = {key: value for key, value in given.items() if value is not None}
    licenses = defaults.get("license", [])
    if license is not None and license not in licenses:
        raise ConfigError(f"license {license!r} is not offered by the template; choose one of: {', '.join(licenses)}")
    output = Path(output_dir)
    config = get_user_config()
    if not interactive:
        extra = _checked_answers(template_path, defaults, config, extra, output)
    baked = _render(main, template_path, extra, output, interactive)
    return BakedPlugin(path=baked, answers=_answers_of(baked, extra, config["replay_dir"], template_path))


def _checked_answers(
    template_path: Path, defaults: dict[str, Any], config: dict[str, Any], extra: dict[str, Any], output: Path
) -> dict[str, Any]:
    """The answers resolved exactly as cookiecutter will (defaults rendered from plugin_name, the
    user config applied), every one checked, before anything is written.

    :raises ConfigError: all the invalid answers in one message, or the target exists.
    """
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    context = generate_context(str(template_path / "cookiecutter.json"), config["default_context"], extra)
    answers = {k: str(v) for k, v in prompt_for_config(context, no_input=True).items() if not k.startswith("_")}
    errors = _validator(template_path).validate(answers, list(defaults["_hook_signatures"]))
    if errors:
        raise ConfigError("invalid plugin answers:\n  " + "\n  ".join(errors))
    target = output / answers["project_slug"]
    if target.exists():
        raise ConfigError(f"{target} already exists; remove it or choose another --output-dir")
    return answers


def _render(main: Any, template_path: Path, extra: dict[str, Any], output: Path, interactive: bool) -> Path:
    """Run cookiecutter; its failures as one ConfigError each."""
    from cookiecutter.exceptions import CookiecutterException, FailedHookException, OutputDirExistsException

    try:
        path = main.cookiecutter(
            str(template_path),
            no_input=not interactive,
            extra_context=extra,
            output_dir=str(output),
        )
    except OutputDirExistsException as exc:
        raise ConfigError(f"{exc}; remove it or choose another --output-dir") from exc
    except FailedHookException as exc:
        raise ConfigError("invalid plugin answers (see the errors above); nothing was created") from exc
    except CookiecutterException as exc:
        raise ConfigError(f"cookiecutter failed: {exc}") from exc
    return Path(path)


def _answers_of(path: Path, known: dict[str, Any], replay_dir: str, template: Path) -> dict[str, str]:
    """The answers cookiecutter used: those resolved up front, or (interactive) its replay file."""
    if "project_slug" in known and "module_name" in known and "hooks" in known:
        return {k: str(v) for k, v in known.items()}
    from cookiecutter.replay import load

    context = load(replay_dir, template.name)["cookiecutter"]
    return {k: str(v) for k, v in context.items() if not k.startswith("_")}


def next_steps(baked: BakedPlugin) -> str:
    """What ``trainhooks new-plugin`` prints after baking: the rest of the five minutes."""
    name = baked.plugin_name
    return "\n".join(
        [
            f"Created {baked.path} (plugin {name!r}, module {baked.answers['module_name']}, "
            f"hooks: {', '.join(baked.hooks)})",
            "Next:",
            f"  cd {baked.path}",
            '  python -m pip install -e ".[test]"',
            f"  trainhooks plugins            # lists {name}",
            "  trainhooks fit --epochs 2     # runs its hooks",
            "  python -m pytest              # its tests: real, tiny training runs",
            "Writing hooks, ordering, checkpoints, testing, publishing: docs/plugin-guide.md in trainhooks.",
        ]
        + (
            [
                "Note: trainhooks-requirement.txt names a local path (this trainhooks' checkout); "
                "put trainhooks' git URL there before pushing, so the generated CI can install it."
            ]
            if "file://" in baked.answers.get("trainhooks_requirement", "")
            else []
        )
    )
