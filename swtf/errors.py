"""The one exception type that reaches users as a one-line message and exit code 2."""


class SwtfError(Exception):
    """Bad input or an unsupported request: the message names the problem and, where possible, the fix."""


def first_line(err, width=200):
    """A library exception's message cut to one line of at most `width` characters (its type if it has none):
    what a one-line `SwtfError` quotes as the cause."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= width else text[:width - 3] + "..."
