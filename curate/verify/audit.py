"""How often the verifier is wrong on a run's own data.

A stratified random sample of verdicts (strata: verdict, reason, domain, source) is labelled
right or wrong, by people or by the judge model; the labels give, per verdict, the share of
answers that were truly right (for `correct`, the verifier's precision; for `incorrect` and
`unverifiable`, what it missed), each with a 95% interval, overall and per stratum.

Per stratum h of a verdict with N_h rows, n_h labelled and k_h right, the estimate is
sum_h (N_h/N) k_h/n_h. Its variance uses the Agresti-Coull shares (k_h+2)/(n_h+4) and the
finite-population correction; the interval is Wilson's at the effective sample size that
variance implies (with one stratum, Wilson's interval itself).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

Z95 = 1.959964
STRATA = ("verdict", "verdict_reason", "domain", "source")
VERDICTS = ("correct", "incorrect", "unverifiable")


@dataclass(frozen=True)
class Rate:
    """The share of answers truly right among rows with one verdict (or in one stratum)."""

    right: float | None  # None: nothing labelled
    low: float | None
    high: float | None
    labelled: int
    rows: int


def labels_for_width(width: float) -> int:
    """Labels one verdict needs for a 95% interval of at most `width` at worst (a share of
    one half)."""
    if not 0 < width < 1:
        raise ValueError("the interval width is a share between 0 and 1")
    return math.ceil(Z95**2 * 0.25 / (width / 2) ** 2)


def wilson(share: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a share seen in n trials (n may be an effective size)."""
    if n <= 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    spread = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - spread), min(1.0, centre + spread)


def stratified_rate(strata: list[tuple[int, int, int]]) -> Rate:
    """The estimate from (rows, labelled, right) per stratum (see the module's text)."""
    seen = [(big, n, k) for big, n, k in strata if n > 0]
    rows = sum(big for big, _, _ in strata)
    labelled = sum(n for _, n, _ in seen)
    if not seen:
        return Rate(None, None, None, 0, rows)
    covered = sum(big for big, _, _ in seen)
    share = sum(big / covered * k / n for big, n, k in seen)
    variance = 0.0
    for big, n, k in seen:
        adjusted = (k + 2) / (n + 4)
        correction = max(0.0, 1 - n / big) if big > 0 else 0.0
        variance += (big / covered) ** 2 * adjusted * (1 - adjusted) / (n + 4) * correction
    if variance <= 0:  # every row labelled: the share is known
        return Rate(share, share, share, labelled, rows)
    pooled = (sum(k for _, _, k in seen) + 2) / (labelled + 4)
    effective = pooled * (1 - pooled) / variance
    low, high = wilson(share, effective)
    return Rate(share, min(low, share), max(high, share), labelled, rows)


def draw(frame: pl.DataFrame, per_verdict: int, seed: int = 0) -> pl.DataFrame:
    """A stratified random sample: per verdict, `per_verdict` rows spread over its strata in
    proportion to their size, one at least from each stratum (while the budget lasts)."""
    strata = [name for name in STRATA if name in frame.columns]
    frame = frame.with_row_index("_row")
    picked: list[pl.DataFrame] = []
    for verdict in VERDICTS:
        rows = frame.filter(pl.col("verdict") == verdict)
        if rows.height == 0:
            continue
        groups = rows.group_by(strata, maintain_order=True).len().sort("len", descending=True)
        budget = min(per_verdict, rows.height)
        quotas = allocate([int(n) for n in groups["len"]], budget)
        for key, quota in zip(groups.drop("len").iter_rows(), quotas, strict=True):
            if quota == 0:
                continue
            stratum = rows.filter(same_stratum(strata, key))
            picked.append(stratum.sample(quota, seed=seed, shuffle=True))
    if not picked:
        return frame.head(0)
    return pl.concat(picked).sort("_row").drop("_row")


def allocate(sizes: list[int], budget: int) -> list[int]:
    """Labels per stratum: one each first (largest strata first), the rest in proportion."""
    quotas = [1 if i < budget else 0 for i in range(len(sizes))]
    left = budget - sum(quotas)
    total = sum(sizes)
    extra = [
        min(size - q, math.floor(left * size / total))
        for size, q in zip(sizes, quotas, strict=True)
    ]
    quotas = [q + e for q, e in zip(quotas, extra, strict=True)]
    index = 0
    while sum(quotas) < budget and any(q < s for q, s in zip(quotas, sizes, strict=True)):
        if quotas[index] < sizes[index]:
            quotas[index] += 1
        index = (index + 1) % len(sizes)
    return quotas


def same_stratum(strata: list[str], key: tuple[Any, ...]) -> pl.Expr:
    condition = pl.lit(True)
    for name, value in zip(strata, key, strict=True):
        condition &= pl.col(name).is_null() if value is None else pl.col(name) == value
    return condition


def audit(population: pl.DataFrame, labelled: pl.DataFrame) -> dict[str, Any]:
    """The audit's figures: per verdict and per stratum, from the population's verdicts and
    the labelled sample (its `right` column: True, False, or null when undecided)."""
    strata = [name for name in STRATA if name in population.columns]
    sizes = population.group_by(strata).len()
    counts = (
        labelled.filter(pl.col("right").is_not_null())
        .group_by(strata)
        .agg(pl.len().alias("labelled"), pl.col("right").cast(pl.Int64).sum().alias("right"))
    )
    table = sizes.join(counts, on=strata, how="left", nulls_equal=True).fill_null(0)
    verdicts = {}
    for verdict in VERDICTS:
        part = table.filter(pl.col("verdict") == verdict)
        if part.height:
            cells = [
                (int(a), int(b), int(c))
                for a, b, c in part.select("len", "labelled", "right").iter_rows()
            ]
            verdicts[verdict] = asdict(stratified_rate(cells))
    per_stratum = []
    for row in table.sort(strata, nulls_last=True).iter_rows(named=True):
        rate = stratified_rate([(row["len"], row["labelled"], row["right"])])
        per_stratum.append({**{name: row[name] for name in strata}, **asdict(rate)})
    return {
        "labelled": int(counts["labelled"].sum()) if counts.height else 0,
        "undecided": labelled.height - (int(counts["labelled"].sum()) if counts.height else 0),
        "verdicts": verdicts,
        "strata": per_stratum,
    }


REPORT_FILE = "audit.json"  # in RUN/reports/


def saved_report(reports: Path) -> dict[str, Any] | None:
    """A run's audit as `curate audit` saved it in RUN/reports/, or None."""
    path = reports / REPORT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The headline, then the share of each verdict that was truly right, for a terminal or
    the report's page."""
    lines = [headline(report)]
    for verdict, rate in (report.get("verdicts") or {}).items():
        if rate.get("right") is not None:
            lines.append(
                f"  {verdict:13} truly right {100 * rate['right']:5.1f}% "
                f"[{100 * rate['low']:.1f}, {100 * rate['high']:.1f}] "
                f"({rate['labelled']:,} labelled of {rate['rows']:,})"
            )
    return lines


def headline(report: dict[str, Any]) -> str:
    """One line for the card and `curate stats`."""
    correct = report.get("verdicts", {}).get("correct")
    by = report.get("by", "labels")
    if not correct or correct["right"] is None:
        return f"verifier audited ({by}): no `correct` verdict labelled"
    return (
        f"verifier audited on {report['labelled']:,} traces ({by}): precision of correct "
        f"{100 * correct['right']:.1f}% [{100 * correct['low']:.1f}, {100 * correct['high']:.1f}]"
    )
