"""A bidirectional GRU generator for loflex (the writing-a-generator tutorial)."""
