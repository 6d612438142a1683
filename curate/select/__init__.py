"""The select stage: which verified traces become the dataset, and why the rest did not."""

from curate.select.config import Band, Budget, Mix, SelectConfig
from curate.select.stage import SelectStage

__all__ = ["Band", "Budget", "Mix", "SelectConfig", "SelectStage"]
