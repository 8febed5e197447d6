"""The one exception type for user mistakes: the CLI prints its message and exits 2."""


class MmbenchError(Exception):
    """A problem with the user's input or environment, reported as one clear line."""
