"""Whether a text commits to an answer, for verifiers that read answers not marked by a box.

A fallback that takes the last number or letter of a text pays a policy for text that states
no answer: a refusal ("cannot confidently select option A or B"), a deferral ("once you find
f(6), add it to f(0), which is 0"), a conditional ("if heads, the answer is 7; if tails, 9"),
an example inside a refusal, or a question the model invented after answering. These
functions say so, so the verifier answers unverifiable or incorrect instead of correct.
"""

from __future__ import annotations

import re

# A refusal or deferral: the text says it cannot, or leaves the answer to the reader.
REFUSAL = re.compile(
    r"\b(?:cannot|can\s*not|can't|can’t|couldn't|couldn’t|could\s+not|unable\s+to|impossible\s+to"
    r"|not\s+possible\s+to|no\s+way\s+to|not\s+able\s+to)\b[^.\n]{0,60}?"
    r"\b(?:determin|find|found|solv|comput|calculat|answer|select|choos|decid|know|say|tell"
    r"|identify|give|provide|pick|conclude|evaluat|obtain|be\s+(?:sure|certain|confident))"
    r"|\b(?:not|in)?sufficient\s+(?:information|data|details)"
    r"|\bnot\s+enough\s+(?:information|data|details)"
    r"|\b(?:need|require)s?\s+(?:more|additional|further)\s+(?:information|context|details|data)"
    r"|\bwithout\s+(?:more|additional|further)\s+(?:information|context|details|data)"
    r"|\b(?:I'?m|I’m|I\s+am)\s+not\s+(?:sure|certain|confident)"
    r"|\bno\s+(?:unique|single|definitive|definite|clear)\s+(?:answer|solution|value|choice)"
    r"|\bonce\s+you\s+(?:find|have|know|compute|calculate|determine|solve)"
    r"|\b(?:left|leave)\s+(?:it\s+)?(?:as\s+an\s+exercise|to\s+(?:you|the\s+reader))"
    r"|无法|不能确定|无法确定",
    re.IGNORECASE,
)
# A statement of an answer that holds only under a condition.
CONDITIONAL = re.compile(
    r"\b(?:if|when|assuming|provided|in\s+case)\b[^.;\n]{1,150}?,?\s*(?:then\s+)?"
    r"(?:the\s+(?:final\s+|correct\s+)?(?:answer|result|value|choice|option)"
    r"|it(?:'s|\s+is|\s+would\s+be)|we\s+(?:get|have)|this\s+gives|choose|select|pick)\b",
    re.IGNORECASE,
)
OTHERWISE = re.compile(r"\b(?:otherwise|else|alternatively)\b", re.IGNORECASE)
# Where a text states its answer: a box, "answer is", "Answer:", "therefore ... is/= X".
STATED = re.compile(
    r"\\boxed|\bfinal\s+answer\s*(?:is\b|\**\s*[:：])|\banswer\s*(?:is\b|:|would\s+be)"
    r"|^\s*\**answer\**\s*[:：]"
    r"|\b(?:therefore|thus|hence|so)\b[^\n]{0,120}?(?:\bis\b|=)\s*\S|答案",
    re.IGNORECASE | re.MULTILINE,
)
# The start of a question the model invented after it answered.
INVENTED = re.compile(
    r"\n\s*(?:#+\s*|\*\*\s*)?(?:(?:next|new|another|follow-?up|bonus|practice)\s+)?"
    r"(?:question|problem|exercise|example|q|human|user|instruction)\s*\d*\s*\**\s*[:：.]"
    r"|\n\s*(?:let'?s\s+try\s+another|here(?:'s|\s+is)\s+another|now\s+(?:try|solve)\s+this)"
    r"|<\|im_start\|>|<\|user\|>|<\|endoftext\|>",
    re.IGNORECASE,
)
NEAR = 300  # characters between statements read together for conditions
# a text that ends stating a value: "The sum is 5."
ENDS_WITH_VALUE = re.compile(r"(?:\bis\b|=)\s*\$?-?\d[\d.,/]*\$?\s*[.!]?\s*\**\s*$")
CLOSING = 600  # characters at the end of a text with no stated answer read for a refusal


def without_invented(text: str) -> str:
    """The text up to a question the model invented after it had stated an answer (the
    answer to the invented question is not the answer to this one)."""
    for marker in INVENTED.finditer(text):
        before = text[: marker.start()]
        if STATED.search(before) or ENDS_WITH_VALUE.search(before):
            return before
    return text


def closing_part(text: str) -> tuple[str, str]:
    """What the text says from the last place it states an answer (for a refusal), and from the
    start of the line of the first of the statements just before it (for conditions: "if ..,
    the answer is 7; if .., 9"); the last CLOSING characters, twice, when it states none (a
    fallback would read the last value there)."""
    found = list(STATED.finditer(text))
    if not found:
        return text[-CLOSING:], text[-CLOSING:]
    last = found[-1].start()
    near = [m.start() for m in found[-3:] if last - m.start() <= NEAR]  # "if.. is 7; if.. is 9"
    line = text.rfind("\n", 0, near[0]) + 1
    return text[last:], text[line:]


def unstated(text: str) -> str | None:
    """Why a text without a box commits to no single answer ("refusal" or "conditional"), or
    None when it does."""
    after, closing = closing_part(text)
    if REFUSAL.search(after):
        return "refusal"
    conditions = len(CONDITIONAL.findall(closing))
    if conditions >= 2 or (conditions == 1 and OTHERWISE.search(closing)):
        return "conditional"
    return None
