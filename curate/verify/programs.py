"""The program a code answer stands for, assembled as the harnesses that wrote it run it.

- A fenced answer: its last block, after the definitions and imports of earlier blocks
  (helpers written in fences of their own; their example runs are left out).
- An unfenced program (`def f(...)`, `import sys`) as it is.
- A body that continues the prompt (HumanEval and MultiPL-E sample files, base models): the
  prompt's code, then the body, as HumanEval's harness runs `prompt + completion`.
- A whole function whose prompt imported or defined what it uses (`List`, a helper): the
  prompt's imports and other definitions before it.
"""

from __future__ import annotations

import ast
import re

FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
PROGRAM_START = re.compile(r"^(def |class |import |from \S+ import |print\(|async def |@)", re.M)
KEPT = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)


def parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def definitions(code: str, leave_out: str | None = None) -> str:
    """The top-level imports, functions and classes of code (not `leave_out`), as source."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return ""
    lines = code.splitlines()
    kept = []
    for node in tree.body:
        if not isinstance(node, KEPT) or getattr(node, "name", None) == leave_out:
            continue
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        kept.append("\n".join(lines[start - 1 : node.end_lineno]))
    return "\n\n".join(kept)


def defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None


def prompt_code(problem: str | None) -> str | None:
    """The code a prompt holds: the prompt itself when it is Python (HumanEval), else its
    last fenced block, else its text from the first line a program starts with."""
    if not problem:
        return None
    if parses(problem) and PROGRAM_START.search(problem):
        return problem
    blocks = FENCE.findall(problem)
    if blocks and parses(blocks[-1]):
        return str(blocks[-1])
    start = PROGRAM_START.search(problem)
    if start is not None and parses(problem[start.start() :]):
        return problem[start.start() :]
    return None


def is_body(text: str) -> bool:
    """Indented lines that continue a definition (the first line that says something is
    indented): a body, not a program, even when a line starts with `import`."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and lines[0][:1] in (" ", "\t")


def fenced_program(text: str) -> str | None:
    """The last fenced block after the definitions of the blocks before it."""
    blocks = [str(b) for b in FENCE.findall(text)]
    if not blocks:
        return None
    helpers = [definitions(b) for b in blocks[:-1]]
    return "\n\n".join([h for h in helpers if h] + [blocks[-1]])


def extract_code(text: str | None) -> str | None:
    """The program an answer holds without its prompt: fenced blocks, else an unfenced
    program; None for anything else (a body needs its prompt: see `program`)."""
    if not text:
        return None
    fenced = fenced_program(text)
    if fenced is not None:
        return fenced
    if PROGRAM_START.search(text) and not is_body(text):
        return text
    return None


def program(answer: str | None, problem: str | None, entry_point: str | None) -> str | None:
    """The program to run for an answer to a problem (see the module's text), or None."""
    if not answer or not answer.strip():
        return None
    prompt = prompt_code(problem)
    code = extract_code(answer)
    if code is None:
        if prompt is None:
            return None
        body = answer if is_body(answer) or not PROGRAM_START.search(answer) else None
        joined = f"{prompt.rstrip()}\n{body}" if body is not None else None
        return joined if joined is not None and parses(joined) else None
    if prompt is None:
        return code
    if entry_point and not defines(code, entry_point) and defines(prompt, entry_point):
        joined = f"{prompt.rstrip()}\n{code}"  # a fenced body
        return joined if parses(joined) else code
    context = definitions(prompt, leave_out=entry_point)
    return f"{context}\n\n{code}" if context else code
