"""Spot integer powers too large to compute before they reach sympy.

latex2sympy evaluates `5^{5^{5^5}}` exactly, which no timeout interrupts in time and
which would take longer than the universe has anyway (Math-Verify issue #65). A power
whose value has more than MAX_DIGITS decimal digits is hopeless: sympy already times out
on 3^{10^8} (about 48 million digits) within math-verify's 5 s limit. Exponents are
estimated with floats; anything the small evaluator does not understand (symbols,
functions) makes no estimate, so the guard only ever refuses plainly numeric towers.
"""

from __future__ import annotations

import math
import re

MAX_DIGITS = 1e8
DIGITS = "0123456789"
TOKEN = re.compile(r"[0-9]+(?:\.[0-9]+)?|\\[a-zA-Z]+|\S")  # ASCII digits: float() refuses ₁
IGNORED = {"\\left", "\\right", "\\!", "\\,", "\\;"}
TIMES = {"*", "\\cdot", "\\times"}
FRACTIONS = {"\\frac", "\\dfrac", "\\tfrac"}
CLOSING = {"(": ")", "{": "}", "[": "]"}


class Unknown(Exception):
    """The text is not a plain numeric expression."""


def too_large(text: str) -> bool:
    """Whether the text holds a numeric power with more than MAX_DIGITS digits."""
    if "^" not in text:
        return False
    tokens = [t for t in TOKEN.findall(text) if t not in IGNORED]
    for index, token in enumerate(tokens):
        if (
            token == "^"
            and 0 < index < len(tokens) - 1
            and power_digits(tokens, index) > MAX_DIGITS
        ):
            return True
    return False


def power_digits(tokens: list[str], caret: int) -> float:
    """Decimal digits of `base ^ exponent` around tokens[caret], or 0 when unknown."""
    base = tokens[caret - 1]
    if base[0] not in DIGITS or float(base) <= 1:
        return 0.0
    try:
        exponent = Evaluator(
            tokens, caret + 1
        ).atom()  # a group, or a digit run as latex2sympy reads it
    except (Unknown, IndexError, ZeroDivisionError):
        return 0.0
    return exponent * math.log10(float(base))


class Evaluator:
    """A float evaluator for the numeric LaTeX in an exponent; overflow gives infinity."""

    def __init__(self, tokens: list[str], position: int) -> None:
        self.tokens = tokens
        self.position = position

    def take(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def expression(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            sign = 1 if self.take() == "+" else -1
            value = value + sign * self.term()
        return value

    def term(self) -> float:
        value = self.power()
        while self.peek() in TIMES or self.peek() == "/":
            operator = self.take()
            other = self.power()
            value = value / other if operator == "/" else value * other
        return value

    def power(self) -> float:
        if self.peek() == "-":
            self.take()
            return -self.power()
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        return raise_to(base, self.atom())

    def atom(self) -> float:
        token = self.take()
        if token[0] in DIGITS:
            return float(token)
        if token in CLOSING:
            value = self.expression()
            if self.take() != CLOSING[token]:
                raise Unknown(token)
            return value
        if token in FRACTIONS:
            numerator, denominator = self.atom(), self.atom()
            return numerator / denominator
        raise Unknown(token)


def raise_to(base: float, exponent: float) -> float:
    try:
        return float(base**exponent)
    except OverflowError:
        return math.inf
    except (ZeroDivisionError, TypeError):  # a negative base to a fractional power
        raise Unknown("power") from None
