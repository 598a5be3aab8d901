"""Built-in component module (being written)."""

from loflex.hookspecs import hookimpl  # noqa: F401
