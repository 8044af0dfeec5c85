"""Exit codes of every `larry` process, one table: what the local supervisor and a Job's
podFailurePolicy act on."""
from enum import IntEnum


class ExitCode(IntEnum):
    #: Done: every task of the process finished (or the report was written).
    OK = 0
    #: Failed in a way a restart may fix (Redis lost, lease lost, payload crashed): retry.
    FAILED = 1
    #: A usage or config mistake: one line on stderr; a retry cannot help.
    USAGE = 2
    #: The worker gave up for good (budget, deadline, a failed dependency): do not retry.
    GAVE_UP = 3
    #: Interrupted by Ctrl+C or SIGTERM.
    INTERRUPTED = 130
