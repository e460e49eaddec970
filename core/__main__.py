"""``python -m trainhooks`` is the ``trainhooks`` command."""

from trainhooks.cli import main

raise SystemExit(main())
