"""Pre-generation hook: check the answers before cookiecutter writes a single file.

Cookiecutter renders this file with Jinja and runs it; a non-zero exit aborts the bake (and
removes the half-made directory). The rules live in :func:`validate`, which is plain Python with
no template syntax, so ``trainhooks new-plugin`` imports this very file and reports the same
errors before calling cookiecutter: one copy of the rules for both ways of baking.

It must stay self-contained (standard library only): ``cookiecutter plugin-template/`` may run
from an environment where trainhooks is not installed. The hook names it checks against come
from ``_hook_signatures`` in ``cookiecutter.json`` (a test keeps that in sync with trainhooks).
"""

from __future__ import annotations

import difflib
import json
import keyword
import re
import sys

PLUGIN_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
"""Entry-point names users type after ``-p`` (and ``-p no:``); also prefixes the plugin's options."""

DIST_NAME = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
"""A valid distribution name (PEP 508)."""

VERSION = re.compile(
    r"^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?"
    r"(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?$"
)
"""A canonical public version (PEP 440)."""

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

RESERVED_MODULES = frozenset({"trainhooks", "test", "tests", "conftest"})
"""Module names that would shadow trainhooks itself or confuse pytest."""

FREE_TEXT = ("author", "description")
"""Answers written into TOML strings and Python docstrings."""


def parse_hooks(text: str) -> list[str]:
    """``"a, b,a"`` -> ``["a", "b"]``: the hooks answer as a list, in the order given."""
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def suggest(name: str, known: list[str]) -> str:
    """`` (did you mean X / Y?)`` for a misspelled hook name, or an empty string."""
    words = [w for w in name.lower().split("_") if w]
    hits = sorted((k for k in known if words and all(w in k.split("_") for w in words)), key=len)
    hits = hits[:3] or difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" (did you mean {' / '.join(hits)}?)" if hits else ""


def validate(answers: dict[str, str], known_hooks: list[str]) -> list[str]:
    """Every problem with ``answers`` (cookiecutter's variables), as messages; empty when fine."""
    errors: list[str] = []
    plugin = answers.get("plugin_name", "")
    if not PLUGIN_NAME.match(plugin):
        errors.append(
            f"plugin_name {plugin!r} is not a valid plugin name: it becomes the entry-point name users "
            "type after '-p' and the prefix of the plugin's options, so use letters, digits, '_' and "
            "'-', starting with a letter (e.g. 'my_plugin')"
        )
    module = answers.get("module_name", "")
    if keyword.iskeyword(module):
        errors.append(f"module_name {module!r} is a Python keyword, which cannot be imported; pick another name")
    elif not module.isidentifier():
        errors.append(
            f"module_name {module!r} is not a valid Python module name: use letters, digits and '_', "
            "not starting with a digit (e.g. 'trainhooks_my_plugin')"
        )
    elif module in RESERVED_MODULES or module in getattr(sys, "stdlib_module_names", ()):
        errors.append(f"module_name {module!r} would shadow an existing module; pick another name")
    slug = answers.get("project_slug", "")
    if not DIST_NAME.match(slug):
        errors.append(
            f"project_slug {slug!r} is not a valid distribution name: use letters, digits, '.', '_' "
            "and '-', starting and ending with a letter or digit (e.g. 'trainhooks-my-plugin')"
        )
    requirement = answers.get("trainhooks_requirement", "trainhooks").strip()
    if not re.match(r"^trainhooks\b(\s*\[[\w,\s-]*\])?\s*(@\s*\S+|[<>=!~][^@]*)?$", requirement):
        errors.append(
            f"trainhooks_requirement {requirement!r} is not a pip requirement for trainhooks: use e.g. "
            "'trainhooks @ git+https://github.com/OWNER/trainhooks' or 'trainhooks @ file:///path/to/trainhooks'"
        )
    version = answers.get("version", "")
    if not VERSION.match(version):
        errors.append(f"version {version!r} is not a PEP 440 version (e.g. '0.1.0')")
    email = answers.get("email", "")
    if email and not EMAIL.match(email):
        errors.append(f"email {email!r} is not an e-mail address (leave it empty for none)")
    for key in FREE_TEXT:
        value = answers.get(key, "")
        if not value.strip():
            errors.append(f"{key} must not be empty")
        elif any(c in value for c in '"\\') or not value.isprintable():
            errors.append(
                f"{key} {value!r} must be one line without '\"' or '\\' (it goes into TOML and Python strings)"
            )
    hooks = parse_hooks(answers.get("hooks", ""))
    if not hooks:
        errors.append(
            f"hooks: name at least one hook to start from, e.g. 'on_fit_epoch_end'; known: {', '.join(known_hooks)}"
        )
    for hook in hooks:
        if hook not in known_hooks:
            errors.append(
                f"hooks: {hook!r} is not a trainhooks hook{suggest(hook, known_hooks)}; `trainhooks hooks` lists them"
            )
    return errors


def main() -> int:
    """Run by cookiecutter with the rendered answers below."""
    context = json.loads(r"""{{ cookiecutter | jsonify }}""")
    answers = {key: str(value) for key, value in context.items() if not key.startswith("_")}
    errors = validate(answers, list(context["_hook_signatures"]))
    for message in errors:
        print(f"ERROR: {message}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
