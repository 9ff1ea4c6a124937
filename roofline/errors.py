"""The one exception type for bad user input.

The CLI turns it into a one-line message and exit status 2; library callers
catch it like any ``ValueError``.
"""


class RooflineError(ValueError):
    """Bad input: the message names the problem and how to fix it."""
