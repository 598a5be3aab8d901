"""Training and what it runs on: the loop, the device/process runtime it shares with the
benchmarks, optimiser and EMA, the batch stream, memory checks, checkpoints, run
directories, and order comparisons under one budget.
"""
