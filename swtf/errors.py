"""The one exception type that reaches users as a one-line message and exit code 2."""


class SwtfError(Exception):
    """Bad input or an unsupported request: the message names the problem and, where possible, the fix."""
