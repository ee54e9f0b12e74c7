"""How every CLI ends: its result, or one line saying what went wrong, with an exit code.

    exit 0    done
    exit 1    a runtime failure (diverged, a damaged checkpoint, a folder in use, a failed rank, ...)
    exit 2    bad input (a flag, a config file, a dataset id that cannot be used)
    exit 130  Ctrl-C (the message is the command that resumes)

A traceback is shown only with DECISION_BACKBONES_DEBUG=1 (for reporting a bug).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Callable

from .config import ConfigError
from .errors import TrainingInterrupted

DEBUG_VARIABLE = "DECISION_BACKBONES_DEBUG"


def exit_code(error: BaseException) -> int:
    if isinstance(error, TrainingInterrupted):
        return 130
    if isinstance(error, (ConfigError, ValueError)):
        return 2
    return 1


EXPECTED = (ValueError, RuntimeError, OSError, LookupError)
"""Errors whose message is written for the user; any other type is a bug, named by its type."""


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, EXPECTED) else f"{type(error).__name__}: {text}"


def run_cli(main: Callable[[list[str] | None], Any], argv: list[str] | None = None) -> None:
    """Call main(argv) and exit with its code (the module doc)."""
    try:
        main(argv)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - the one place that turns any error into a line
        if os.environ.get(DEBUG_VARIABLE):
            traceback.print_exc()
        unexpected = not isinstance(error, EXPECTED) and not os.environ.get(DEBUG_VARIABLE)
        hint = f"  ({DEBUG_VARIABLE}=1 shows the traceback)" if unexpected else ""
        print(f"error: {one_line(error)}{hint}", file=sys.stderr)
        sys.exit(exit_code(error))
