"""The recipe's `publish:` section: where a run goes on the Hub and what its card declares."""

from __future__ import annotations

from pydantic import Field

from curate.stage import Config


class PublishConfig(Config):
    """How `curate publish` stages and uploads a run."""

    repo_id: str | None = Field(None, description="Hub dataset repository (org/name).")
    private: bool = Field(True, description="Create the repository private.")
    license: str | None = Field(
        None, description="License of the data (an SPDX id); left out of the card when unset."
    )
    language: list[str] = Field(
        default_factory=list, description="Languages of the data (ISO codes) for the card."
    )
    pretty_name: str | None = Field(None, description="Display name on the Hub.")
    think: bool = Field(
        True, description="Put the reasoning inside <think>...</think> in the assistant turn."
    )
