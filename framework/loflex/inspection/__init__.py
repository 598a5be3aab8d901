"""Looking inside a model: generation trajectories, per-token insertion times, pictures,
the HTML report and the diagnostics.
"""
