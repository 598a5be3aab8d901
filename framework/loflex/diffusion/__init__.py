"""The insertion diffusion itself: the Kumaraswamy schedule, the order family built on it,
the forward process ``x_1 -> x_t``, the training losses and the collation of examples into
clean batches.
"""
