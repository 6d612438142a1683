"""Every recipe users copy from pipelines/ is valid against the current config models."""

from pathlib import Path

import pytest

from curate.recipe import load_recipe
from curate.runner import build_stages
from curate.stage import StageContext

PIPELINES = sorted((Path(__file__).resolve().parents[1] / "pipelines").glob("*.yaml"))


@pytest.mark.parametrize("path", PIPELINES, ids=[p.stem for p in PIPELINES])
def test_pipeline_is_valid(path: Path, tmp_path: Path):
    recipe = load_recipe(path)
    stages = build_stages(recipe, StageContext(tmp_path))
    try:
        assert stages, "a pipeline with no stages"
    finally:
        for stage in stages:
            stage.close()
