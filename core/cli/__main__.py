"""``python -m trainhooks.cli`` is the ``trainhooks`` command too."""

from trainhooks.cli import main

raise SystemExit(main())
