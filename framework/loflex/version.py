"""The version of loflex (a leaf module, so that anything may read it)."""

__version__ = "0.1.0"
