"""Hook implementations of this plugin."""

from loflex.hookspecs import hookimpl  # noqa: F401
