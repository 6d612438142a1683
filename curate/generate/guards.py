"""Streaming guards: stop a sample as soon as it loops or drifts into another language,
instead of paying for the tokens it would burn up to max_tokens."""

from __future__ import annotations

from collections import Counter

from pydantic import Field

from curate.stage import Config
from curate.text import Script, count_foreign, word_ngrams


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
        counts = Counter(word_ngrams(words, self.config.ngram))
        if counts and max(counts.values()) > self.config.max_repeats:
            return "guard_repetition"
        return None

    def _language(self) -> str | None:
        """Drift: too large a share of letters from scripts not allowed (counted as it comes)."""
        fresh = self.text[self.scanned :]
        self.scanned = len(self.text)
        foreign, letters = count_foreign([fresh], self.config.allowed_scripts)
        self.foreign += foreign
        self.letters += letters
        if len(self.text) < self.config.min_chars or not self.letters:
            return None
        if self.foreign / self.letters > self.config.max_foreign_share:
            return "guard_language"
        return None
