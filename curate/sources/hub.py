"""Datasets on the Hugging Face Hub (or any folder `datasets.load_dataset` understands)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import Field

from curate import registry
from curate.errors import SourceError
from curate.hub import hub_problem, offline_datasets
from curate.records import stable_hash
from curate.sources.base import Row, RowSourceConfig, Source


class HubConfig(RowSourceConfig):
    """Problems from a Hub dataset id or a local dataset folder."""

    kind: Literal["hub"] = Field("hub", description="Read a Hub dataset or a local dataset folder.")
    dataset: str = Field(description="Hub dataset id (org/name) or a local dataset folder.")
    config: str | None = Field(None, description="Dataset configuration (subset) name.")
    split: str = Field("train", description="Split to read.")
    revision: str | None = Field(None, description="Git revision (branch, tag or commit).")
    name: str | None = Field(None, description="Source name stored with each problem.")


@registry.sources.register("hub")
class HubSource(Source):
    """Problems from a Hub dataset id or a local dataset folder."""

    kind = "hub"
    config_class = HubConfig
    config: HubConfig

    def identity(self) -> str:
        return stable_hash(self.config.identity())

    def source_name(self) -> str:
        return self.config.name or self.config.dataset

    def rows(self) -> Iterator[tuple[str, int, Row]]:
        import datasets

        config = self.config
        where = f"{config.dataset} [{config.split}]"
        local = Path(config.dataset).exists()
        problem = "" if local else hub_problem()  # one probe, not a minute of retries
        try:
            with offline_datasets(bool(problem)):  # a cached copy still serves
                data = datasets.load_dataset(
                    config.dataset, config.config, split=config.split, revision=config.revision
                )
        except Exception as exc:  # datasets raises many types for a missing or gated repo
            reason = problem or " ".join(str(exc).split())[:300]
            raise SourceError(f"{where}: cannot load ({reason})") from None
        for number, row in enumerate(data, start=1):
            yield where, number, row
