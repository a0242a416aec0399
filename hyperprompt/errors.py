"""A user-facing error: the CLI prints its message on one line and exits non-zero."""


class UsageError(Exception):
    """Bad input (config, data, paths): the message names the problem and the fix."""
