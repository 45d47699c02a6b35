"""What one learner's notebook may use while class grading runs it (``dlcourse grade``).

The defaults of :func:`dlcourse.exercises.grading.grade` and of the command's options, in a
module of their own that imports nothing, so that ``dlcourse grade --help`` can show them
without loading torch. ``--timeout`` and ``--memory`` change the first two.
"""

TIMEOUT_S = 120.0  # seconds one notebook may run
MEMORY_MB = 2048  # megabytes of memory one notebook may use
OUTPUT_LIMIT = 1 << 20  # bytes a submission may print
RESULT_LIMIT_MB = 64  # the largest file it may write (its results included)
EXTRA_TASKS = 64  # processes/threads it may add to the user's count
MAX_NOTEBOOK_BYTES = 50 << 20  # a notebook file larger than this is not read
