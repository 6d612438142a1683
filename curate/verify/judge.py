"""The judge of test scripts (HumanEval checks, MBPP asserts), run inside the sandbox.

This file is a standalone program (standard library only) that the code verifier runs as the
sandbox's main program. It plays two roles:

- the judge: makes itself undumpable, forks the candidate's process (before it has read
  anything: the fork holds no test and no nonce, and runs nothing of the program until the
  judge sends it), reads {nonce, code, test, entry_point} from stdin, deletes the stdin file,
  sends the program to the candidate and runs the test script in its own process, where each
  function the test uses is a proxy that calls the candidate's function over a pipe. Values
  cross as plain data (no objects whose `__eq__` says yes to everything), the candidate never
  sees the test, the expected values or the nonce, and exiting, killing its parent or
  rewriting builtins only ends the candidate. The verdict is one line `NONCE pass` or
  `NONCE fail WHY` on the judge's stdout: a program that does not know the nonce cannot
  write it.
- the candidate (the fork): runs the code, then answers calls until its stdin closes.
"""

from __future__ import annotations

import builtins
import contextlib
import ctypes
import importlib
import json
import os
import sys
import types
from typing import Any

MAX_LINE = 16 << 20  # a reply longer than this is a failure, not a memory bomb
PR_SET_DUMPABLE = 4


def encode(value: Any) -> Any:
    """Plain data as tagged JSON (tuples, sets, dicts with any keys, exact floats)."""
    if value is None or isinstance(value, (bool, str)):
        return str.__str__(value) if isinstance(value, str) else value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return {"f": float.__repr__(value)}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, tuple):
        return {"t": [encode(item) for item in value]}
    if isinstance(value, dict):
        return {"d": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"s": [encode(item) for item in value]}
    if isinstance(value, bytes):
        return {"b": bytes(value).hex()}
    if isinstance(value, complex):
        return {"c": [float.__repr__(value.real), float.__repr__(value.imag)]}
    raise TypeError(f"cannot pass a {type(value).__name__} between the test and the program")


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    ((tag, body),) = data.items()
    if tag == "f":
        return float(body)
    if tag == "t":
        return tuple(decode(item) for item in body)
    if tag == "d":
        return {decode(k): decode(v) for k, v in body}
    if tag == "s":
        return {decode(item) for item in body}
    if tag == "b":
        return bytes.fromhex(body)
    if tag == "c":
        return complex(float(body[0]), float(body[1]))
    raise ValueError(f"unknown tag {tag!r}")


# ---- the candidate's side -------------------------------------------------------------


def candidate() -> None:
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # the program's own prints go nowhere
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    first = json.loads(requests.readline())
    exec(compile(first["code"], "solution.py", "exec"), namespace)
    callables = sorted(k for k, v in namespace.items() if callable(v) and not k.startswith("__"))
    modules = {k: v.__name__ for k, v in namespace.items() if isinstance(v, types.ModuleType)}
    reply(channel, {"ready": callables, "modules": modules})
    for line in requests:
        request = json.loads(line)
        try:
            result = namespace[request["call"]](*decode(request["args"]))
            reply(channel, {"value": encode(result)})
        except Exception as exc:
            reply(channel, {"raised": type(exc).__name__, "message": str(exc)[:200]})


def reply(channel: Any, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


# ---- the judge's side -----------------------------------------------------------------


class CandidateGone(Exception):
    """The program exited, was killed or answered out of protocol."""


class Forked:
    """The candidate's process, forked from the judge: its pipes, as Popen would hold them (a
    fork costs a few milliseconds where a new interpreter costs tens)."""

    def __init__(self) -> None:
        to_child, from_judge = os.pipe()
        to_judge, from_child = os.pipe()
        pid = os.fork()
        if pid == 0:  # the candidate: its stdin and stdout become the pipes at once
            os.dup2(to_child, 0)
            os.dup2(from_child, 1)
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 2)
            for fd in (to_child, from_judge, to_judge, from_child, quiet):
                os.close(fd)
            try:
                candidate()
            finally:
                os._exit(0)
        os.close(to_child)
        os.close(from_child)
        self.pid = pid
        self.stdin = os.fdopen(from_judge, "wb")
        self.stdout = os.fdopen(to_judge, "rb")


class Candidate:
    """The program in its own process, called over a pipe."""

    def __init__(self, process: Forked, code: str) -> None:
        self.process = process
        self.send({"code": code})
        ready = self.receive()
        if "ready" not in ready:
            raise CandidateGone("the program did not start")
        self.functions: list[str] = ready["ready"]
        self.modules: dict[str, str] = ready.get("modules") or {}

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise CandidateGone("the program exited") from None

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise CandidateGone("the program exited or answered out of protocol")
        try:
            message = json.loads(line)
        except ValueError:
            raise CandidateGone("the program answered out of protocol") from None
        if not isinstance(message, dict):
            raise CandidateGone("the program answered out of protocol")
        return message

    def call(self, name: str, args: tuple[Any, ...]) -> Any:
        self.send({"call": name, "args": encode(list(args))})
        answer = self.receive()
        if "value" in answer:
            return decode(answer["value"])
        if "raised" in answer:
            kind = getattr(builtins, str(answer["raised"]), None)
            # StopIteration (and StopAsyncIteration) would end the test's map() or zip()
            # early, silently passing `all(map(...))`: the call failed, say so
            iteration = (StopIteration, StopAsyncIteration)
            if isinstance(kind, type) and issubclass(kind, Exception) and kind not in iteration:
                raise kind(answer.get("message", ""))
            raise RuntimeError(f"{answer['raised']}: {answer.get('message', '')}")
        raise CandidateGone("the program answered out of protocol")

    def proxy(self, name: str) -> Any:
        def call(*args: Any) -> Any:
            return self.call(name, args)

        call.__name__ = name
        return call


def names_used(code: types.CodeType) -> set[str]:
    found = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            found |= names_used(const)
    return found


def run_test(spec: dict[str, Any], process: Forked) -> str:
    """'pass', or 'fail WHY'."""
    test = compile(spec["test"], "test.py", "exec")
    program = Candidate(process, spec["code"])
    scope: dict[str, Any] = {"__name__": "__test__", "__builtins__": builtins}
    entry = {spec["entry_point"]} if spec.get("entry_point") else set()
    # the test's own builtins stay its own: a program defining `abs` or `len` beside a wrong
    # solution must not change what the test's assertions compute
    wanted = (names_used(test) - set(dir(builtins))) | entry
    for name in wanted & set(program.functions):
        scope[name] = program.proxy(name)
    for name in wanted & set(program.modules):  # `math` imported by the solution, used by the test
        scope[name] = importlib.import_module(program.modules[name])
    exec(test, scope)
    if spec.get("entry_point"):
        if spec["entry_point"] not in scope:
            return f"fail no function {spec['entry_point']}"
        scope["check"](scope[spec["entry_point"]])
    return "pass"


def undumpable() -> None:
    """Other processes of this user (the candidate) cannot read this one's memory or files."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def judge() -> None:
    undumpable()
    process = Forked()  # before the spec is read: the fork never holds the test or the nonce
    spec = json.loads(sys.stdin.read())
    stdin_file = os.path.realpath("/proc/self/fd/0")
    if os.path.isfile(stdin_file):
        os.unlink(stdin_file)  # the test and nonce are gone before the program starts
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    nonce = spec.pop("nonce")
    try:
        verdict = run_test(spec, process)
    except CandidateGone as exc:
        verdict = f"fail runtime_error ({exc})"
    except AssertionError:
        verdict = "fail assertion"
    except BaseException as exc:  # the verdict is the point: anything else is a failure
        verdict = f"fail {type(exc).__name__}"
    sys.stdout.write(f"\n{nonce} {verdict}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    judge()
