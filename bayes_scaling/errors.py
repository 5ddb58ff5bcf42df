"""The one exception a user ever sees: bad input, reported as a single line."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (file, row, column or option).

    The CLIs print ``str(err)`` as one line on stderr and exit with code 2; they never
    show a traceback for it and never leave a half-written artifact behind.
    """

    exit_code = 2

    def __str__(self) -> str:
        # The one-line contract holds whatever a message embeds (a pandas error, a
        # column name with a newline in it, an array repr): line breaks become spaces.
        return " ".join(super().__str__().splitlines())
