"""The one exception type a user ever sees.

Every user-facing failure (a bad spec, a wrong CID, a revert, an unreachable
node) is raised as a `TesseraError` subclass with a one-line message; the CLI
prints that line and exits non-zero, never a traceback.
"""


class TesseraError(Exception):
    """Base class of errors reported to the user as one line."""

    exit_code = 1
