"""``trainhooks.plugins``: the built-in plugins.

Each module here is registered as an entry point of the ``trainhooks`` distribution in the
``trainhooks`` group (see ``pyproject.toml``), so built-ins are discovered, listed, enabled and
disabled exactly like third-party plugins. They use only the public ``trainhooks`` API.
"""
