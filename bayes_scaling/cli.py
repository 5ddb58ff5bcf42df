"""What every command line of the project shares: one-line errors, exit codes.

Bad input — a bad option (argparse) or an ``InputError`` from the data layer — prints one
``error: …`` line on stderr and exits 2; Ctrl-C exits 130; neither shows a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from bayes_scaling.errors import InputError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line (exit 2), like bad data."""

    def error(self, message: str) -> None:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def guarded(body: Callable[[], int], *, interrupted: str = "interrupted; nothing written") -> int:
    """Run a command's body, turning InputError and Ctrl-C into one line and an exit code."""
    try:
        return body()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
