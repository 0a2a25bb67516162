"""One exception type for every user-facing failure.

Entry points (the CLI, the flows) catch :class:`DynamixError` and print its message as a
single line, so each message must name the file or key at fault and say how to fix it.
"""


class DynamixError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class DatasetLayoutError(DynamixError):
    """A dataset folder or list file does not have the layout its loader expects."""


class ManifestError(DynamixError):
    """A manifest table is missing columns, has wrong types or breaks an id rule."""
