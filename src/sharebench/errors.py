"""The one error family a user can cause: the CLI catches :class:`SharebenchError` alone.

Every error that a user can fix (a bad file, a bad option, a benchmark that cannot exist) is a
subclass, so commands never import the CLI to raise one, and ``sharebench`` prints its message
as one line with exit code 2 instead of a traceback. A leaf module: it imports nothing of the
project.
"""

from __future__ import annotations


class SharebenchError(Exception):
    """A mistake the user can fix; the message is one line that says what and how."""


class UsageError(SharebenchError):
    """Bad command-line input (an option, a path, a combination of them)."""


class ConfigError(SharebenchError, ValueError):
    """Bad benchmark parameters; the message names the valid choices."""


class ResultsError(SharebenchError, ValueError):
    """A results file that cannot be used; the message is one line for the user."""


class RuleError(SharebenchError, ValueError):
    """A threshold, alpha or noise setting that cannot be understood."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (its type's name when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
