"""Forms of one math answer that graders treat as the same, and golds no rule can compare.

Before math-verify sees a final answer, what carries no value is taken off the way the
field's graders do: thin spaces, a unit after the value (`15,000 \\, \\text{kcal}`, `1.69 Å`,
`12^{\\mathrm{th}} \\text{ grade}`), thousands separators; `1e-5`, and mixed numbers
(`1 1/2`) are written as math-verify reads them. Units are only taken off an answer whose
gold has none (a gold in words or with a qualifier is decided elsewhere).

A gold in words (`listen`, `\\text{no}`) is compared as words. One that says more than a short
phrase (a sentence, `\\text{not a rational number}`), or math with a qualifier in words
(`(1, n) \\text{ for any } n \\ge 1`), cannot be compared by a rule: every answer to it is
unverifiable (`gold_is_text`), never incorrect.
"""

from __future__ import annotations

import re

from curate.records import Verdict

SPACING = re.compile(r"(?<!\\)\\[,;:! >]|\\q?quad\b|~|\u2009|\u202f|\u00a0")
WRAPPER = r"\\(?:text|textbf|textit|textrm|textnormal|textsf|mathrm|mbox|operatorname)\s*"
TEXT_WRAPPER = re.compile(WRAPPER + r"\{([^{}]*)\}")
# A unit: letters (any script: Å, µm, Ω), spaces, powers, slashes, dots; no digits of its own
# but in a power, and none of the words that make an answer a hedge or a qualifier.
# each further word needs a separator, so a run of letters has one reading (no backtracking)
UNIT_TEXT = r"[^\W\d_]+(?:(?:\s*[./\-]\s*|\s+)[^\W\d_]+)*\.?(?:\^\{?-?\d\}?)?"
LONGEST_UNIT_SEARCH = 300  # characters: a longer answer is not a value with a unit
HEDGE_WORD = re.compile(r"\b(?:or|and|not|nor|for|if|any|all|each|every|when|where)\b", re.I)
UNIT_TAIL = re.compile(
    rf"(?:\s*{WRAPPER}\{{\s*({UNIT_TEXT})\s*\}}(?:\^\{{?-?\d\}}?)?"  # \text{ cm}^2
    rf"|\s+(?=[^\W\d_]{{2}})({UNIT_TEXT})"  # a bare word after a space: 15 kcal
    r"|\s*([^\x00-\x7f][^\W\d_]*))\s*$"  # a symbol: 1.69Å, 5µm
)
GLUED_UNIT = re.compile(r"(-?\d+(?:\.\d+)?)([^\W\d_]{3,})")  # `10weeks`; `5ab` is a product
DEGREES = re.compile(r"\s*(?:\^\s*\{?\\circ\}?|°|\\degree)\s*$")
ORDINAL = re.compile(
    r"^(\d+)\s*(?:\^\s*\{?\s*(?:" + WRAPPER + r")?\{?(?:st|nd|rd|th)\}?\s*\}?"
    r"|(?:st|nd|rd|th)\b)"
)
THOUSANDS = re.compile(r"^(-?[1-9]\d{0,2}(?:,\d{3})+)(\.\d+)?$")
SCIENTIFIC = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*[eE]\s*([+-]?\d+)$")
MIXED = re.compile(r"^(-?)(\d+)\s+(?:(\d+)\s*/\s*(\d+)|\\[dt]?frac\{(\d+)\}\{(\d+)\})$")
NUMBER = re.compile(
    r"-?(?:\d+(?:\.\d+)?|\.\d+|\d+\s*/\s*\d+|\\[dt]?frac\{-?\d+\}\{\d+\})(?:\s*\\?%)?"
)


def plain(text: str) -> str:
    """Outer dollars and spacing commands off (`32,\\! 349` is 32,349), runs of space made one."""
    text = re.sub(r"(?<!\\)\\!\s*", "", text.strip().strip("$").strip()).replace("{:}", ":")
    text = SPACING.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def without_units(text: str) -> str:
    """The value without a unit, degrees or ordinal suffix after it; the text itself when
    what is left would be empty or is not a value."""
    value = plain(text)
    if len(value) > LONGEST_UNIT_SEARCH:
        return value
    for _ in range(3):  # "12^{th} \text{ grade}": a word, then the ordinal
        match = UNIT_TAIL.search(value)
        if match is None or HEDGE_WORD.search(match.group(0)):
            break
        rest = value[: match.start()].rstrip()
        if not rest or not re.search(r"[\d}\)]$", rest):
            break
        value = rest
    value = DEGREES.sub("", value) or value
    glued = GLUED_UNIT.fullmatch(value)
    if glued and glued.group(2).lower() not in MATH_WORDS:
        value = glued.group(1)  # 10weeks
    return ORDINAL.sub(r"\1", value)


def number_form(text: str) -> str:
    """A number as math-verify reads it: `15,000` -> 15000, `1e-5` -> 1\\times10^{-5},
    `1 1/2` -> \\frac{3}{2}; other text unchanged."""
    value = plain(text)
    thousands = THOUSANDS.fullmatch(value)
    if thousands:
        return thousands.group(1).replace(",", "") + (thousands.group(2) or "")
    scientific = SCIENTIFIC.fullmatch(value)
    if scientific:
        return f"{scientific.group(1)}\\times10^{{{int(scientific.group(2))}}}"
    mixed = MIXED.fullmatch(value)
    if mixed:
        sign, whole = mixed.group(1), int(mixed.group(2))
        top, bottom = (
            int(g) for g in (mixed.group(3) or mixed.group(5), mixed.group(4) or mixed.group(6))
        )
        if 0 < top < bottom:
            return f"{sign}\\frac{{{whole * bottom + top}}}{{{bottom}}}"
    return value


SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
WRITTEN_POWER = re.compile(
    r"(\d+(?:\.\d+)?)\s*(?:x|×|\*|·|\\times|\\cdot)\s*10\s*"
    r"(?:\^\s*\(?\{?\s*([+\-−]?\d+)\s*\}?\)?|([⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+))"
)


def written_powers(text: str) -> str:
    """Scientific notation as prose writes it (`4.569 x 10^-24`, `1.2 × 10⁻⁵`) as LaTeX, which
    math-verify's fallback reads whole (not as its last factor `10^-24`), between dollars
    unless it already stands between them."""

    def as_latex(match: re.Match[str]) -> str:
        power = (match.group(2) or match.group(3).translate(SUPERSCRIPTS)).replace("−", "-")
        value = f"{match.group(1)} \\times 10^{{{int(power)}}}"
        inside = len(re.findall(r"(?<!\\)\$", text[: match.start()])) % 2 == 1
        return value if inside else f"${value}$"

    return WRITTEN_POWER.sub(as_latex, text)


def is_number(text: str) -> bool:
    """A plain number: integer, decimal, fraction, a percentage of one."""
    return bool(NUMBER.fullmatch(number_form(text)))


def has_text(text: str) -> bool:
    """Words in the text (a \\text{} group or a bare word), beyond a unit at its end."""
    value = without_units(text)
    for match in TEXT_WRAPPER.finditer(value):
        if re.search(r"[_^]\s*\{?\s*$", value[: match.start()]):
            continue  # a name's label: \lambda_{\text{red}}
        if re.search(r"[^\W\d_]{2,}", match.group(1)) and not re.fullmatch(
            r"\s*(?:,|and|or)?\s*", match.group(1)
        ):
            return True
    bare = TEXT_WRAPPER.sub(" ", value)
    bare = re.sub(r"\\[A-Za-z]+", " ", bare)
    words = re.findall(r"(?<![A-Za-z_{])[a-z]{3,}(?![A-Za-z])", bare)  # MBCN, x_{abc}: names
    return any(word not in MATH_WORDS and word not in ("and", "or") for word in words)


SUBSCRIPT = re.compile(r"_\s*([A-Za-z0-9])")
SUBSCRIPT_COMMAND = re.compile(r"_\{\\([A-Za-z]+)\}")
SUPERSCRIPT_POWER = re.compile(r"(?<=[\w)}])([⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)")
E_LABEL = re.compile(r"(?<![\\A-Za-z])([Ee])_\{")
NAMED_VALUES = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*([^=,]+?)\s*(?:,|$)")


def symbol_forms(text: str) -> str:
    """Subscripts braced (`E_1` is `E_{1}`), a subscript named by a command read as its name
    (`L_{\\odot}`, which latex2sympy cannot read), powers written as superscript characters
    (`x²`) as powers, and a labelled E read as a name, not as Euler's number (latex2sympy
    reads `E_{1}` as nothing and `E_1 + 1` as 1)."""
    text = SUBSCRIPT_COMMAND.sub(r"_{\1}", SUBSCRIPT.sub(r"_{\1}", text))
    text = SUPERSCRIPT_POWER.sub(lambda m: f"^{{{m.group(1).translate(SUPERSCRIPTS)}}}", text)
    return E_LABEL.sub(r"\\mathrm{\1}_{", text)


def values_of_names(answer: str, gold: str) -> str:
    """`a = -2, b = -2` as `-2, -2` when the gold lists values without names."""
    if "=" in gold or answer.count("=") < 2:
        return answer
    values, rest = [], answer
    while rest and (match := NAMED_VALUES.match(rest)) is not None:
        values.append(match.group(1))
        rest = rest[match.end() :]
    return ", ".join(values) if not rest.strip() and len(values) >= 2 else answer


def unit_of(text: str) -> str:
    """The unit after a value, as letters only (`\\text{ weeks}` and `weeks` alike)."""
    value = plain(text)
    tail = value[len(without_units(value)) :] if value.startswith(without_units(value)) else ""
    return re.sub(r"[^a-z]", "", TEXT_WRAPPER.sub(r"\1", tail).lower())


def answer_form(answer: str, gold: str) -> str:
    """The answer as it is compared with the gold: spacing off; a unit off when the gold has
    none; numbers in the forms math-verify reads."""
    value = plain(answer)
    if not has_text(gold) and unit_of(gold) in ("", unit_of(value)):
        value = without_units(value)  # none in the gold, or the same one: `10weeks`, `10 weeks`
    return symbol_forms(number_form(values_of_names(value, gold)))


def gold_form(gold: str) -> str:
    """The gold as it is compared: spacing and a trailing unit off, numbers made plain."""
    return symbol_forms(number_form(without_units(gold)))


SHORT_WORDS = {"no", "or", "of", "in", "is", "on", "to", "an", "at", "by", "up", "it", "yes"}
MATH_WORDS = {
    "pi",
    "infty",
    "inf",
    "oo",
    "infinity",
    "sqrt",
    "frac",
    "ln",
    "log",
    "sin",
    "cos",
    "tan",
    "cot",
    "sec",
    "csc",
    "exp",
    "lim",
    "max",
    "min",
    "det",
    "mod",
    "gcd",
    "lcm",
}
NUMBER_WORDS = re.compile(
    r"\b(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
    r"fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
    r"seventy|eighty|ninety|hundred|thousand|million|billion|half|halves|thirds?|quarters?)\b",
    re.I,
)
WORDS = re.compile(r"[^\W\d_](?:[^\W\d_]|[' -])*[^\W\d_]|[^\W\d_]")
PHRASE_WORDS = 3  # bare golds of more words than this are sentences: no rule compares them


def as_words(text: str) -> str | None:
    """The words a text answer says (`listen`, `\\text{no}`), lower case; None for math
    (`p-q`, `x`, `AB`, `\\pi`): one word of three letters or more, or a short word, is needed."""
    inner = TEXT_WRAPPER.sub(r"\1", text.strip().strip("$")).strip().rstrip(".").strip()
    if not WORDS.fullmatch(inner):
        return None
    tokens = [t.lower() for t in re.findall(r"[^\W\d_]+", inner)]
    real = [t for t in tokens if (len(t) >= 3 or t in SHORT_WORDS) and t not in MATH_WORDS]
    if not real or (len(tokens) > 1 and all(len(t) == 1 for t in tokens)):
        return None
    return " ".join(inner.lower().split())


def words_verdict(gold_words: str, answer: str) -> tuple[Verdict, str | None]:
    """(verdict, reason) of an answer against a gold in words; number words against a number
    cannot be judged by a rule: unverifiable, never incorrect."""
    said = as_words(answer)
    if said == gold_words:
        return "correct", None
    if said is None and NUMBER_WORDS.search(gold_words):
        return "unverifiable", "gold_is_text"  # "forty two" against 42
    return "incorrect", "mismatch"
