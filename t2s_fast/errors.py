"""The one error type for user mistakes. The CLI catches it once and exits with code 2."""


class T2SError(Exception):
    """A problem the user can fix: bad input, a missing file, a setting that cannot work.

    The message must say what is wrong, where (file, line, field) and, where possible, what to do.
    """

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """An exception's first line (its type's name when it says nothing), for a one-line error message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
