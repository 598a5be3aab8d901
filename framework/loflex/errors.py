"""User-facing errors.

Anything a user or a plugin author can cause raises a :class:`LoflexError`
subclass whose message names the problem and the fix. The CLI prints
``Error: <message>`` (plus one indented line per entry of ``details``) and exits 1.
Internal invariants use ``assert`` instead.
"""

from __future__ import annotations


class LoflexError(Exception):
    """Base class of every error a user can cause and fix.

    Args:
        message: one line naming the problem and the fix.
        details: extra lines (e.g. one per invalid config field), shown indented.
    """

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def render(self) -> str:
        """Return the CLI form: ``Error: message`` and indented detail lines."""
        lines = [f"Error: {self.message}"] + [f"  {line}" for line in self.details]
        return "\n".join(lines)

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  {line}" for line in self.details)


class ConfigError(LoflexError):
    """A run file, an override or a component's options are invalid."""


class UnknownComponentError(ConfigError):
    """A component name is not registered by any loaded plugin."""


class PluginError(LoflexError):
    """A plugin failed to load, registered a bad class or a duplicate name."""


class DataError(LoflexError):
    """Input data cannot be read or contains nothing usable."""


class CheckpointError(LoflexError):
    """A checkpoint is missing, truncated, unsafe or does not match the config."""


class TrainingError(LoflexError):
    """Training cannot continue (e.g. too many non-finite steps in a row)."""
