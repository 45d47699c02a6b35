"""Judging what a grading process sent back: untrusted bytes, read within bounds and checked
against the protocol, then compared with the reference in the grader's own process (the same
verdicts and hints as ``ex.check()``).

What comes back is everything the process wrote on its results pipe (:mod:`dlcourse.exercises.
wire`): learner code shares that process and may have written to the pipe too, so every frame is
read as untrusted. A frame that is malformed, too large or of the wrong shape fails that exercise
with a plain message; an exception while judging one exercise fails that exercise, never the
learner's other exercises, nor the class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from dlcourse.exercises.engine import Attempt, CheckResult, Exercise, GradAttempt
from dlcourse.exercises.isolation import _ProcessEnd, _why_it_ended
from dlcourse.exercises.submissions import _Cell, _failed, _function
from dlcourse.exercises.wire import WireError, decode, read_stream

if TYPE_CHECKING:  # pragma: no cover
    from dlcourse.exercises.grading import _Run, _Settings

# What an attempt's kind may be (engine.Attempt, GradAttempt): anything else is malformed.
_ATTEMPT_KINDS = {"returned", "not attempted", "timeout", "forbidden", "raised", "exited"}
_GRAD_KINDS = {"ok", "failed", "not connected"}
_MAX_VALUES = 16  # results of one call


class _NotPlainData(ValueError):
    """What came back is not what the protocol allows."""


# --------------------------------------------------------------------------- reading the pipe


@dataclass
class _Back:
    """What a grading process sent, sorted: where it got to, and its records (still bytes)."""

    progress: list[str] = field(default_factory=list)
    fence: str = ""
    crashed: str = ""
    cells: dict[int, bytes] = field(default_factory=dict)
    records: dict[str, bytes] = field(default_factory=dict)
    garbled: str = ""

    @property
    def finished(self) -> bool:
        return bool(self.progress) and self.progress[-1] == "done"


def _text(body: bytes, limit: int = 2000) -> str:
    """Untrusted bytes as one line of printable text."""
    text = body[: limit * 4].decode("utf-8", errors="replace")[:limit]
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "", text)


def _read_back(data: bytes) -> _Back:
    """Sort the frames of the results pipe (later frames of one name replace earlier ones)."""
    stream = read_stream(data)
    back = _Back(garbled=stream.garbled)
    for name, body in stream.frames:
        if name == "progress":
            back.progress.append(_text(body, 300))
            del back.progress[:-100]
        elif name == "fence":
            back.fence = _text(body, 300)
        elif name == "crashed":
            back.crashed = _text(body)
        elif name.startswith("cell-") and name[5:].isdigit() and len(name) < 16:
            back.cells[int(name[5:])] = body
        elif name.startswith("exercise-"):
            back.records[name[9:]] = body
    return back


def _load_record(body: bytes) -> dict[str, Any]:
    """One record, decoded within the wire's bounds; a record says "too large" when the process
    found it too large to send."""
    try:
        record = decode(body)
    except WireError as exc:
        raise _NotPlainData(str(exc)) from None
    if type(record) is not dict:
        raise _NotPlainData("not a record")
    return record


def _attempt(record: Any, n_args: int) -> Attempt:
    if not isinstance(record, dict) or record.get("kind") not in _ATTEMPT_KINDS:
        raise _NotPlainData("a malformed attempt")
    value, after = record.get("value") or [], record.get("args_after") or []
    if type(value) is not list or type(after) is not list or len(value) > _MAX_VALUES:
        raise _NotPlainData("a malformed attempt")
    if record["kind"] == "returned" and len(after) != n_args:
        raise _NotPlainData("an attempt for another number of arguments")
    detail = record.get("detail", "")
    return Attempt(
        record["kind"], tuple(value), tuple(after), detail if type(detail) is str else ""
    )


def _grad_attempt(record: Any) -> GradAttempt:
    if not isinstance(record, dict) or record.get("kind") not in _GRAD_KINDS:
        raise _NotPlainData("a malformed gradient record")
    grads = record.get("grads") or []
    if type(grads) is not list or len(grads) > 64:
        raise _NotPlainData("a malformed gradient record")
    detail = record.get("detail", "")
    return GradAttempt(record["kind"], tuple(grads), detail if type(detail) is str else "")


def _memory_note(text: str, settings: _Settings) -> str:
    if "MemoryError" in text or "can't allocate memory" in text or "std::bad_alloc" in text:
        return f"\n(Grading allows {settings.memory_mb} MB of memory: your code asked for more.)"
    return ""


def _judge(
    ex: Exercise, record: dict[str, Any], sets: list[tuple[int | None, list]], settings: _Settings
) -> CheckResult:
    """The verdict on what the process sent back for ``ex``: the fixed inputs first (the same
    messages as ``ex.check()``), then the randomised ones; a recognised mistake's hint from the
    engine's diagnosis, as in ``ex.check()``."""
    if not record.get("found"):
        return _failed(ex, f"your cell ran, but did not define `{_function(ex)}`.", "not_defined")
    got_sets = record.get("sets") or []
    if not isinstance(got_sets, list) or len(got_sets) > len(sets):
        raise _NotPlainData("the wrong number of input sets")
    for k, (seed, cases) in enumerate(sets):
        if k >= len(got_sets):  # the process stops after a set that fails
            raise _NotPlainData("results missing for some inputs")
        got = got_sets[k]
        attempts = got.get("attempts") or [] if isinstance(got, dict) else []
        grads = got.get("grads") or [] if isinstance(got, dict) else []
        if type(attempts) is not list or not attempts:
            raise _NotPlainData("no attempts")
        for i, args in enumerate(cases):
            if i >= len(attempts):
                raise _NotPlainData("too few attempts")
            attempt = _attempt(attempts[i], len(args))
            cpu = {torch.device("cpu")}
            verdict = ex.verdict(args, attempt, case=i + 1, seed=seed, devices=cpu)
            if verdict:
                verdict.message += _memory_note(verdict.message, settings)
                verdict.hint = ex.diagnose(verdict.failure)
                return verdict
            if ex.grad:
                grad = _grad_attempt(grads[i] if type(grads) is list and i < len(grads) else None)
                verdict = ex.grad_verdict(args, grad, case=i + 1, seed=seed)
                if verdict:
                    verdict.hint = ex.diagnose(verdict.failure)
                    return verdict
    total = sum(len(cases) for _, cases in sets)
    return CheckResult(
        ex.name,
        "pass",
        f"all {total} inputs match (the self-check's and {total - len(sets[0][1])} "
        "randomised ones).",
    )


def _judge_results(
    exercises: list[Exercise],
    cells: list[_Cell],
    end: _ProcessEnd,
    sets_of: dict[str, list[tuple[int | None, list]]],
    settings: _Settings,
    results: dict[str, CheckResult],
    seconds: dict[str, float],
    run: _Run,
) -> list[str]:
    """Judge each exercise from its record; say why for those without one. Return the exercises
    the process never reached because it died while calling another one (not at a cell, not at
    the notebook's time limit): those deserve a process of their own."""
    back = _read_back(end.results)
    run.fence = "; ".join(x for x in (end.isolation, back.fence) if x)  # the layers in force
    last = back.progress[-1] if back.progress else "starting"
    ended = ""
    if not back.finished:
        ended = _why_it_ended(end, settings)
        if back.crashed and not end.stopped_for:
            ended = f"the grading process failed ({back.crashed})" + _memory_note(
                back.crashed, settings
            )
        if last.startswith("cell "):
            where = f"while running your cell for `{last[5:]}`"
        elif last.startswith("exercise "):
            where = f"while calling your `{last[9:]}`"
        else:
            where = "before your code ran"
        ended = f"{where}, {ended}".rstrip(".?") + ("?" if ended.endswith("?") else "")
    cell_of = {name: cell for cell in cells for name in cell.exercises}
    unreached: list[str] = []
    died_calling = last.startswith("exercise ") and not end.stopped_for
    for ex in exercises:
        cell = cell_of.get(ex.name)
        cell_record = _cell_record(back.cells.get(cell.index)) if cell else None
        body = back.records.get(ex.name)
        if body is None:
            if not back.finished:
                stop = "" if ended.endswith("?") else "."
                if last == f"exercise {ex.name}":
                    message = f"not graded: {ended}{stop}"
                else:
                    message = f"not graded, as the notebook's grading stopped: {ended}{stop}"
                    if died_calling:
                        unreached.append(ex.name)
                results[ex.name] = _failed(ex, message, "stopped")
            else:
                results[ex.name] = _failed(ex, "no result came back from grading.", "no_result")
            continue
        try:
            record = _load_record(body)
            if "too large" in record:
                raise _NotPlainData("too large to send back: results far larger than expected")
            took = record.get("seconds")
            seconds[ex.name] = took if type(took) is float and 0 <= took < 1e6 else 0.0
            result = _judge(ex, record, sets_of[ex.name], settings)
        except _NotPlainData as exc:
            result = _failed(
                ex,
                f"what came back from your code is not plain data ({exc}): return plain "
                "torch.Tensor results, and leave the grading machinery alone.",
                "not_plain",
            )
        except Exception as exc:  # one exercise's problem, never the class's
            result = _failed(
                ex,
                f"the grader could not judge what came back ({type(exc).__name__}: "
                f"{_text(str(exc).encode(), 300)}).",
                "grader_error",
            )
        if result.status != "pass" and cell_record and cell_record.get("kind") not in (None, "ok"):
            result.message = _cell_message(cell_record, settings) + "\n" + result.message
        results[ex.name] = result
    return unreached


def _cell_record(body: bytes | None) -> dict[str, Any] | None:
    if body is None:
        return None
    try:
        record = decode(body)
    except WireError:
        return None
    return record if isinstance(record, dict) else None


def _cell_message(record: dict[str, Any], settings: _Settings) -> str:
    detail = str(record.get("detail", ""))[:20_000]
    kind = record.get("kind")
    if kind == "raised":
        return f"running your cell raised an error:\n{detail}{_memory_note(detail, settings)}"
    if kind == "timeout":
        return f"{detail}, so it was stopped: is there a loop at the top level of the cell?"
    if kind == "syntax":
        return f"your cell has a syntax error on {detail}"
    return f"running your cell stopped: {detail}"
