"""``python -m dlcourse ...`` is the same as the ``dlcourse`` command."""

from dlcourse.cli import main

raise SystemExit(main())
