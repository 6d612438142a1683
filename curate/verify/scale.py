"""Numbers compared at their own scale.

math-verify rounds floats to 6 decimals before comparing them, which is right for numbers near
1 and says nothing about small ones: `2.88e-19` and `2.91e-19` both round to 0. A small gold is
compared as math-verify compares a number between 1 and 10: both sides divided by the gold's
power of ten, then rounded to 6 decimals.
"""

from __future__ import annotations

import math
from typing import Any

SMALL = 1e-3  # below this, 6 decimals keep fewer than 3 significant digits


def value_of(item: Any) -> float | None:
    """A parsed item's value when it is a plain number (no symbols), else None."""
    from sympy import Basic

    if not isinstance(item, Basic) or not getattr(item, "is_number", False):
        return None
    try:
        number = complex(item.evalf())
    except (TypeError, ValueError, ArithmeticError):
        return None
    return number.real if number.imag == 0 and math.isfinite(number.real) else None


def differ_at_scale(gold: list[Any], predicted: list[Any]) -> bool:
    """True when a small numeric gold and every predicted number differ at the gold's scale."""
    golds = [v for v in map(value_of, gold) if v is not None]
    if len(golds) != 1 or golds[0] == 0 or abs(golds[0]) >= SMALL:
        return False
    values = [v for v in map(value_of, predicted) if v is not None]
    if not values:
        return False
    unit = 10.0 ** math.floor(math.log10(abs(golds[0])))
    wanted = round(golds[0] / unit, 6)
    return all(round(value / unit, 6) != wanted for value in values)
