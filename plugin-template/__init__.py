"""The cookiecutter template of a trainhooks plugin package (``trainhooks new-plugin``).

This directory is the one copy of the template: ``cookiecutter plugin-template/`` bakes it
from a source checkout, and ``pyproject.toml`` maps it to the package
``trainhooks.plugin_template`` so that wheels ship it as package data and
``trainhooks new-plugin`` finds it wherever trainhooks is installed. This file only makes the
directory importable as that package (editable installs need a regular package to map);
cookiecutter itself reads ``cookiecutter.json``, ``hooks/`` and ``{{cookiecutter.project_slug}}/``.
"""
