"""loflex plugin package."""
