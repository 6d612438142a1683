"""curate: build verified reasoning datasets, round after round."""

__version__ = "0.1.0"
