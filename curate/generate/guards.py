"""Streaming guards: stop a sample as soon as it loops or drifts into another language,
instead of paying for the tokens it would burn up to max_tokens."""

from __future__ import annotations

from collections import Counter

from pydantic import Field

from curate.filters import Script
from curate.stage import Config


class StreamGuards(Config):
    """Abort a streaming sample that loops or changes language (its finish_reason says why)."""

    ngram: int = Field(10, ge=3, description="Words per n-gram watched for repeats.")
    max_repeats: int = Field(
        12, ge=2, description="Times one n-gram may recur within the window before abort."
    )
    window_chars: int = Field(2000, ge=200, description="Recent text the loop check looks at.")
    allowed_scripts: list[Script] = Field(
        default_factory=lambda: list[Script](["latin", "greek"]),
        description="Scripts a sample may use (greek: math symbols).",
    )
    max_foreign_share: float = Field(
        0.02, ge=0, le=1, description="Share of letters from other scripts that aborts."
    )
    min_chars: int = Field(400, ge=0, description="Text seen before the language check starts.")
    check_every: int = Field(256, ge=1, description="Characters between checks.")


class Guard:
    """Watches one sample's text as it arrives."""

    def __init__(self, config: StreamGuards) -> None:
        self.config = config
        self.text = ""
        self.checked = 0  # length of text at the last check
        self.scanned = 0  # text counted by the language check so far
        self.letters = 0
        self.foreign = 0

    def feed(self, delta: str) -> str | None:
        """Add text; a reason ('guard_repetition', 'guard_language') when it must stop."""
        self.text += delta
        if len(self.text) - self.checked < self.config.check_every:
            return None
        self.checked = len(self.text)
        return self._repetition() or self._language()

    def _repetition(self) -> str | None:
        """A loop: one n-gram recurring too often in the most recent text."""
        words = self.text[-self.config.window_chars :].split()[1:-1]  # edge words may be cut
        n = self.config.ngram
        counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        if counts and max(counts.values()) > self.config.max_repeats:
            return "guard_repetition"
        return None

    def _language(self) -> str | None:
        """Drift: too large a share of letters from scripts not allowed (counted as it comes)."""
        fresh = self.text[self.scanned :]
        self.scanned = len(self.text)
        allowed = self.config.allowed_scripts
        self.letters += sum(1 for char in fresh if char.isalpha())
        self.foreign += sum(1 for char in fresh if _is_foreign(char, allowed))
        if len(self.text) < self.config.min_chars or not self.letters:
            return None
        if self.foreign / self.letters > self.config.max_foreign_share:
            return "guard_language"
        return None


# Python's re has no \p{Script}: scripts are told by code point ranges.
RANGES = {
    "latin": [(0x41, 0x24F), (0x1E00, 0x1EFF)],
    "greek": [(0x370, 0x3FF), (0x1F00, 0x1FFF)],
    "cyrillic": [(0x400, 0x52F)],
    "cjk": [(0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF)],
    "arabic": [(0x600, 0x6FF)],
    "hebrew": [(0x590, 0x5FF)],
    "devanagari": [(0x900, 0x97F)],
    "thai": [(0xE00, 0xE7F)],
}


def _is_foreign(char: str, allowed: list[Script]) -> bool:
    if not char.isalpha():
        return False
    code = ord(char)
    return not any(low <= code <= high for name in allowed for low, high in RANGES[name])
