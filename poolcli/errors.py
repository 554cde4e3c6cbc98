"""The one exception type for a user's mistake in options or data."""


class PoolError(ValueError):
    """A bad argument, shape or pipeline: the message says what was given and what is allowed."""
