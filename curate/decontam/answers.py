"""Whether two final answers are the same: the decontamination and dedup answer rule.

Two problems are one problem only if they also produce the same answer (the rule the LLM
Decontaminator and NeMo-Skills use). Equal spellings and equal numbers are decided at once
(curate/answers.py, the one home of answer text); the rest goes to math-verify, the same
equivalence the math verifier applies.
"""

from __future__ import annotations

from typing import Any

from curate.answers import quick_same


class SameAnswers:
    """Whether answers are the same, for as many batches as a stage has: what spelling and
    numbers leave open goes to math-verify, whose worker process starts once, on first use."""

    def __init__(self) -> None:
        self._dispatcher: Any = None

    def __call__(self, pairs: list[tuple[str, str]], careful: bool = True) -> list[bool | None]:
        """For each (ours, theirs): the same answer, or None when nothing can tell.
        careful: what spelling and numbers leave open goes to math-verify; otherwise it
        stays open."""
        found = [quick_same(ours, theirs) for ours, theirs in pairs]
        open_rows = [row for row, same in enumerate(found) if same is None]
        if careful and open_rows:
            judged = self.math_verify([pairs[row] for row in open_rows])
            for row, same in zip(open_rows, judged, strict=True):
                found[row] = same
        return found

    def math_verify(self, pairs: list[tuple[str, str]]) -> list[bool | None]:
        if not pairs:
            return []
        from curate.verify.dispatch import Dispatcher, Item

        if self._dispatcher is None:
            self._dispatcher = Dispatcher("math", workers=1)
        judged = self._dispatcher.judge(
            [Item(f"The final answer is $\\boxed{{{ours}}}$.", theirs) for ours, theirs in pairs]
        )
        verdicts = [result.verdict for result, _ in judged]
        return [True if v == "correct" else (False if v == "incorrect" else None) for v in verdicts]

    def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None


def same_answers(pairs: list[tuple[str, str]], careful: bool = True) -> list[bool | None]:
    """SameAnswers for one batch (its worker stopped after)."""
    judge = SameAnswers()
    try:
        return judge(pairs, careful)
    finally:
        judge.close()
