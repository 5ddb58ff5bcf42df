"""How bad input reaches a user: one line and exit code 2, never a traceback.

``InputError`` is the one exception a user ever sees. Every command line of the project
(``bayes_scaling``'s and ``training.sweep``) parses with :class:`ArgumentParser`, whose usage
errors are the same one ``error: …`` line, and runs its body through :func:`guarded`, which
prints an InputError as that line (exit 2) and a Ctrl-C as one line (exit 130).
Light on purpose (argparse only): the trainer's command line uses it too.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

#: Exit codes: bad input (an option, a file, a row), a fit that failed its checks under
#: ``--strict``, and Ctrl-C.
EXIT_INPUT = 2
EXIT_STRICT = 3
EXIT_INTERRUPTED = 130


class InputError(ValueError):
    """Bad user input (file, row, column or option).

    The CLIs print ``str(err)`` as one line on stderr and exit with code 2; they never
    show a traceback for it and never leave a half-written artifact behind.
    """

    exit_code = EXIT_INPUT

    def __str__(self) -> str:
        # The one-line contract holds whatever a message embeds (a pandas error, a
        # column name with a newline in it, an array repr): line breaks become spaces.
        return " ".join(super().__str__().splitlines())


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line (exit 2), like bad data.

    A value that starts with a minus sign and a digit (``--target -4e9,1e11``) is read as the
    option's value, so it gets the option's own one-line complaint, not "expected one argument".
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> None:
        self.exit(EXIT_INPUT, f"error: {message} (see {self.prog} --help)\n")


def guarded(body: Callable[[], int], *, interrupted: str = "interrupted; nothing written") -> int:
    """Run a command's body, turning InputError and Ctrl-C into one line and an exit code."""
    try:
        return body()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
