"""The `tessera` command: one Typer app with a sub-app per noun.

Commands are thin: they parse arguments and call the service layer in the
concern's package. Every failure a user can cause — a usage mistake caught by
the argument parser, or a `TesseraError` from the service layer — prints one
line on stderr and exits non-zero, never a traceback.

How errors reach `main` relies only on what Typer documents: the app is run
with `standalone_mode=False`, so parser errors surface as `typer.TyperException`
(the base class Typer exports for its own and its parser's errors), an
explicit `typer.Exit` comes back as the exit code, and `typer.Abort` is raised.
The Typer release is pinned exactly in pyproject.toml, and
tests/integration/test_cli_usage.py runs the installed console script over a
table of mistakes, so a library change that breaks this fails a test.
"""

from __future__ import annotations

import os
import sys

import typer

from agents.errors import TesseraError

__all__ = ["main"]


def __getattr__(name: str):
    # The app is built on first use, so `agents.cli.apps` can be imported by the
    # concerns' command modules without importing all of them in a circle.
    if name == "app":
        from agents.cli.root import app

        return app
    raise AttributeError(name)


def _usage_hint(exc: Exception) -> str:
    ctx = getattr(exc, "ctx", None)  # parser errors carry the command they were raised in
    path = getattr(ctx, "command_path", None)
    return f" (see '{path} --help')" if path else ""


def _one_line(message: str) -> str:
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {_one_line(message)}\n")
    sys.stderr.flush()
    sys.exit(code or 1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `tessera` console script."""
    import signal

    # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored
    # SIGINT ignored: Ctrl-C (or `kill -INT`) must stop an agent however it was started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        from agents.cli.root import app

        code = app(args=argv, prog_name="tessera", standalone_mode=False)
    except TesseraError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.TyperException as exc:  # the parser's usage errors (and Typer's own)
        _fail(exc.format_message() + _usage_hint(exc), exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("aborted", 130)
    except Exception as exc:
        # A bug, not a user mistake: still one line, with the way to the full story.
        if os.environ.get("TESSERA_DEBUG"):
            raise
        _fail(
            f"unexpected {type(exc).__name__}: {exc} (run with TESSERA_DEBUG=1 for the traceback)",
            1,
        )
    if isinstance(code, int) and code:
        sys.exit(code)
