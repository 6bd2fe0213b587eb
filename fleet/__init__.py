"""Fleet health: shared pieces of the three packages (wire protocol, CLI, demo)."""

__version__ = "0.1.0"
