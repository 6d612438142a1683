"""Reaching the Hugging Face Hub: one quick probe, then fail fast and quietly when it is away."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
TRUE = {"1", "true", "yes", "on"}


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


@cache
def hub_problem(timeout_s: float = 5.0) -> str:
    """Why the Hub cannot be used now ('' when it answers): one request, no retries."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in TRUE:
            return f"{name} is set"
    request = urllib.request.Request(f"{endpoint()}/api/datasets?limit=1", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return ""
    except urllib.error.HTTPError:
        return ""  # it answered: the Hub is there
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach {endpoint()} ({reason})"


@contextmanager
def offline_datasets(offline: bool) -> Iterator[None]:
    """Let `datasets` use only what it has cached (no retries against an absent Hub).

    Both libraries read HF_HUB_OFFLINE once, at import; their module flags are what they
    consult afterwards, so those are what is switched here, and switched back after."""
    if not offline:
        yield
        return
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved
