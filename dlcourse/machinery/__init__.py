"""The machinery that runs the course, apart from what the notebooks teach.

Nothing here is a lesson: it is what opens, checks and hands out the notebooks.

- :mod:`~dlcourse.machinery.cli`: the ``dlcourse`` command (each command imports what it needs).
- :mod:`~dlcourse.machinery.lab`: JupyterLab on the learner's copies, ``notebooks/`` read-only.
- :mod:`~dlcourse.machinery.workspace`: the learner's copies in ``work/``, made once, never
  overwritten.
- :mod:`~dlcourse.machinery.notebooks`: the stored notebooks, the pinned settings their outputs
  are made under, ``dlcourse regenerate``, and the checks on them.
- :mod:`~dlcourse.machinery.robustness`: the notebooks run off those settings (threads, seeds,
  CUDA): do the claims hold?
- :mod:`~dlcourse.machinery.kernel_client`: a Jupyter kernel client that never waits long on
  one poll.
- :mod:`~dlcourse.machinery.atomic`: files written whole or not at all (checkpoints, progress,
  notebooks, caches).

The exercises' engine and class grading live in :mod:`dlcourse.exercises`, beside the
exercises themselves. Before this package existed these modules sat at the top of
``dlcourse``; ``dlcourse.lab``, ``dlcourse.cli`` and the others still import (see
``dlcourse/__init__.py``).

Importing this package costs nothing: it imports none of its modules.
"""
