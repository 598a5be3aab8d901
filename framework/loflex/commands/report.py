"""Sub-command group (being written)."""


def add_commands(sub) -> None:
    return None
