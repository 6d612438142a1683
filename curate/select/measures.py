"""What selection ranks by, a trace at a time: its length and rule-based quality scores a
user can read back from the columns.

A trace is its reasoning and its completion. Length is counted in words (runs of
non-space characters), so it needs no tokenizer and is the same on every machine. The
markers follow LIMO's reading of a good chain (arXiv 2502.03387): it checks itself, tries
more than one way, and moves in small explicit steps. Each is counted per 1,000 words, so a
long trace is not better for being long, and each saturates, so one trace stuffed with
"wait" gains no more than a trace that checks itself now and then.
"""

from __future__ import annotations

import polars as pl

from curate.cores import in_chunks

WORDS = "trace_words"
CHECKS = "checks_per_1k"
EXPLORES = "explores_per_1k"
STEPS = "steps_per_1k"
QUALITY = "quality"
MEASURE_COLUMNS = (WORDS, CHECKS, EXPLORES, STEPS, QUALITY)
TEXT = "_curate_trace_text"

# (?i) and \b: case-insensitive whole words; each alternative is one marker
CHECK_MARKERS = (
    r"(?i)\b(let me (?:re)?check|let me verify|double[- ]check|verif(?:y|ying|ied)|"
    r"sanity check|check(?:ing)? (?:this|that|the|again|whether|if)|confirm(?:s|ed|ing)?|"
    r"plug(?:ging)? (?:it |this |that )?back|substitut(?:e|ing) back|wait)\b"
)
EXPLORE_MARKERS = (
    r"(?i)\b(alternatively|another (?:way|approach|method|idea)|what if|perhaps|maybe|"
    r"let(?:'s| me) try|on the other hand|suppose|instead|hmm|or maybe)\b"
)
STEP_MARKERS = r"(?i)\b(therefore|thus|hence|since|because|so that|which means|it follows)\b"

# what each score saturates at, and its weight in `quality` (weights sum to 1): LIMO names
# these four features; the numbers are curate's, chosen so a typical R1 trace of a few
# thousand words with some checking and exploring scores near the middle
ELABORATION_WORDS = 4000.0
SATURATION = {CHECKS: 5.0, EXPLORES: 5.0, STEPS: 20.0}
WEIGHTS = {WORDS: 0.30, CHECKS: 0.20, EXPLORES: 0.25, STEPS: 0.25}


def trace_text() -> pl.Expr:
    """A trace's reasoning and completion as one text (either may be missing)."""
    return pl.concat_str(
        [pl.col("reasoning").fill_null(""), pl.col("completion").fill_null("")], separator="\n"
    )


def with_measures(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with every measure column, worked out from the text where it is there."""
    if WORDS in frame.columns and frame[WORDS].null_count() < frame.height:
        return frame  # measured before (a whole run's keys hold the numbers, not the text)
    for name in ("reasoning", "completion"):
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.String).alias(name))
    # the text and the word count made once, then read by name (an expression used in
    # several columns is worked out again for each); a thread per chunk
    text = pl.col(TEXT)
    frame = in_chunks(frame).with_columns(trace_text().alias(TEXT))
    frame = frame.with_columns(text.str.count_matches(r"\S+").cast(pl.Int64).alias(WORDS))
    per_1k = pl.max_horizontal(pl.col(WORDS), pl.lit(1)).cast(pl.Float64) / 1000.0
    frame = frame.with_columns(
        (text.str.count_matches(CHECK_MARKERS) / per_1k).alias(CHECKS),
        (text.str.count_matches(EXPLORE_MARKERS) / per_1k).alias(EXPLORES),
        (text.str.count_matches(STEP_MARKERS) / per_1k).alias(STEPS),
    ).drop(TEXT)
    return frame.with_columns(quality_score().alias(QUALITY))


def quality_score() -> pl.Expr:
    """LIMO's four features, each scaled to 0..1 and weighted: 0 (none) to 1 (all full)."""
    parts = [(pl.col(WORDS) / ELABORATION_WORDS).clip(0.0, 1.0) * WEIGHTS[WORDS]]
    for name, full in SATURATION.items():
        parts.append((pl.col(name) / full).clip(0.0, 1.0) * WEIGHTS[name])
    return pl.sum_horizontal(parts).round(4)
