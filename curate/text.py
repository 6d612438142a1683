"""What a text is made of, said once for the filters and the streaming guards: which script
a letter belongs to (Unicode's script property, through polars' regex engine: Python's `re`
has none) and which word n-grams repeat."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import polars as pl

Script = Literal["latin", "greek", "cyrillic", "cjk", "arabic", "hebrew", "devanagari", "thai"]
SCRIPTS: dict[str, str] = {
    "latin": r"\p{Latin}",
    "greek": r"\p{Greek}",
    "cyrillic": r"\p{Cyrillic}",
    "cjk": r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}",
    "arabic": r"\p{Arabic}",
    "hebrew": r"\p{Hebrew}",
    "devanagari": r"\p{Devanagari}",
    "thai": r"\p{Thai}",
}
LETTER = r"\p{L}"


def foreign_letter(allowed: Sequence[str]) -> str:
    """A pattern matching one letter of any script not allowed."""
    return rf"[^\P{{L}}{''.join(SCRIPTS[name] for name in allowed)}]"


def count_foreign(texts: Sequence[str], allowed: Sequence[str]) -> tuple[int, int]:
    """(letters from scripts not allowed, all letters) in the texts together."""
    series = pl.Series(list(texts), dtype=pl.String)
    foreign = int(series.str.count_matches(foreign_letter(allowed)).sum() or 0)
    return foreign, int(series.str.count_matches(LETTER).sum() or 0)


def word_ngrams(words: Sequence[str], n: int) -> Iterator[tuple[str, ...]]:
    """Every run of n words, in order (made by zip, which stops at the shortest: faster than
    slicing)."""
    return zip(*(words[start:] for start in range(n)), strict=False)
