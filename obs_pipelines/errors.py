"""Errors meant for users: one sentence that says what is wrong and how to fix it.

Anything else that escapes is a bug and keeps its traceback.
"""


class ObsError(Exception):
    """A problem the user can fix; ``str(error)`` is the whole message."""


class ConfigError(ObsError):
    """The configuration file is missing, malformed or names an unset environment variable."""


class SourceError(ObsError):
    """A telemetry source is unreachable, refused the request or answered nonsense."""


class LakeError(ObsError):
    """The lake cannot be read or written."""
