"""The publish tests talk to FakeHubServer on loopback: huggingface_hub must not be in the
offline mode the other tests set (it reads HF_HUB_OFFLINE once, at import)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
