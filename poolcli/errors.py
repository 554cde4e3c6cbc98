"""The one exception type for a user's mistake in options or data."""


class PoolError(ValueError):
    """A bad argument, shape or pipeline: the message says what was given and what is allowed."""


class UsageError(PoolError):
    """A mistake in how inputs and outputs were named on the command line (exit status 2)."""
