"""Generating from a model: the tau-leaping sampler, loading models by path or name
(``loflex.load``), and writing samples to disk.
"""
