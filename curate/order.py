"""The default order of a recipe's stages, from what each declares.

A stage runs after the stages that make a column it reads: a stage makes a column when it
writes it without reading it (review rewrites `verdict`, which verify makes, so a stage that
reads `verdict` runs after verify; review's own place is declared). What columns cannot say,
a stage declares by name: `after` (dedup and decontamination before generation, so no
teacher call is spent on a problem that is dropped) and `before`. Relations with stages the
recipe does not configure are ignored. Among stages free to run, the one registered first
goes first (built-ins before plugins), so the order never depends on chance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from curate.errors import RecipeError

if TYPE_CHECKING:
    from curate.stage import Stage


def pipeline_order(stages: dict[str, type[Stage]]) -> list[str]:
    """The names of `stages` (registration order) in the order they run."""
    names = list(stages)
    needs = {name: earlier(name, stages) for name in names}
    done: list[str] = []
    while len(done) < len(names):
        free = [n for n in names if n not in done and needs[n] <= set(done)]
        if not free:
            left = sorted(set(names) - set(done))
            raise RecipeError(
                f"stages {', '.join(left)} each wait for another (their reads, writes, "
                "after and before make a cycle): name the order with `stages:`"
            )
        done.append(free[0])
    return done


def earlier(name: str, stages: dict[str, type[Stage]]) -> set[str]:
    """The stages of `stages` that must run before `name`."""
    stage = stages[name]
    found = {other for other in stage.after if other in stages}
    found |= {other for other, cls in stages.items() if name in cls.before}
    for other, cls in stages.items():
        made = set(cls.writes) - set(cls.reads)
        if other != name and made & set(stage.reads):
            found.add(other)
    found.discard(name)
    return found
