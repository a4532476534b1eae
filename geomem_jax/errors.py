"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class UserError(Exception):
    """A mistake in the user's input: a config value, a file, a flag, a workdir."""


class ConfigError(UserError, ValueError):
    """A config field holds a value outside its allowed set or range."""

    def __init__(self, field: str, value, allowed: str):
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is not allowed: expected {allowed}")


class ReleaseFormatError(UserError, ValueError):
    """A release-format file (u=v edges, leaf=root,...,leaf paths) is missing or malformed."""

    def __init__(self, path, line_no: int | None, reason: str):
        where = f"{path}:{line_no}" if line_no is not None else f"{path}"
        super().__init__(f"{where}: {reason}")


class CheckpointError(UserError):
    """A run directory has no usable checkpoint, or not the one asked for."""


def did_you_mean(word: str, choices, prefix: str = "") -> str:
    """' (did you mean PREFIX+X?)' for the choice closest to `word`, or '' when none is close."""
    import difflib

    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""
