"""The one exception type that user-facing code raises for bad input."""


class ThreePhaseError(ValueError):
    """Bad input or an unusable environment, with a message that names the problem and the fix.

    The CLI prints the message alone (no traceback) and exits with status 2.
    """
