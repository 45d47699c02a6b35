"""``python -m dlcourse ...`` is the same as the ``dlcourse`` command."""

from dlcourse.machinery.cli import main

raise SystemExit(main())
