"""Judging what a grading process sent back: untrusted data, checked, then compared with the
reference in the grader's own process (the same verdicts and hints as ``ex.check()``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from dlcourse.exercises.engine import Attempt, CheckResult, Exercise, GradAttempt, NotPlain
from dlcourse.exercises.isolation import _ProcessEnd, _why_it_ended
from dlcourse.exercises.limits import RESULT_LIMIT_MB
from dlcourse.exercises.submissions import _Cell, _failed, _function

if TYPE_CHECKING:  # pragma: no cover
    from dlcourse.exercises.grading import _Run, _Settings


# --------------------------------------------------------------------------- reading results


class _NotPlainData(ValueError):
    pass


def _validate(value: Any, depth: int = 0) -> Any:
    """``value`` as loaded, if it is the plain data the process is to send; raise otherwise.
    The "not plain" descriptions become :class:`NotPlain`."""
    if depth > 8:
        raise _NotPlainData("nested too deeply")
    if type(value) is torch.Tensor or value is None or type(value) in (int, float, bool, str):
        return value
    if type(value) is dict:
        if set(value) == {"not plain"}:
            info = value["not plain"]
            if (
                type(info) is list
                and len(info) == 4
                and all(type(x) is str for x in (info[0], info[1], info[3]))
            ):
                return NotPlain(info[0][:200], info[1][:200], bool(info[2]), info[3][:80])
            raise _NotPlainData("a malformed description")
        if not all(type(k) is str for k in value):
            raise _NotPlainData("a dict with non-string keys")
        return {k: _validate(v, depth + 1) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [_validate(v, depth + 1) for v in value]
    raise _NotPlainData(f"a {type(value).__module__}.{type(value).__name__}")


def _load_result(path: Path) -> dict[str, Any]:
    """A result file, loaded safely (``weights_only``) and checked to be plain data."""
    if path.stat().st_size > RESULT_LIMIT_MB << 20:
        raise _NotPlainData(f"larger than {RESULT_LIMIT_MB} MB")
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise _NotPlainData(f"not loadable as plain data ({type(exc).__name__})") from None
    record = _validate(loaded)
    if type(record) is not dict:
        raise _NotPlainData("not a record")
    return record


def _attempt(record: Any) -> Attempt:
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise _NotPlainData("a malformed attempt")
    return Attempt(
        record["kind"],
        tuple(record.get("value") or ()),
        tuple(record.get("args_after") or ()),
        str(record.get("detail", "")),
    )


def _grad_attempt(record: Any) -> GradAttempt:
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise _NotPlainData("a malformed gradient record")
    return GradAttempt(
        record["kind"], tuple(record.get("grads") or ()), str(record.get("detail", ""))
    )


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
        if not attempts:
            raise _NotPlainData("no attempts")
        for i, args in enumerate(cases):
            if i >= len(attempts):
                raise _NotPlainData("too few attempts")
            attempt = _attempt(attempts[i])
            cpu = {torch.device("cpu")}
            verdict = ex.verdict(args, attempt, case=i + 1, seed=seed, devices=cpu)
            if verdict:
                verdict.message += _memory_note(verdict.message, settings)
                verdict.hint = ex.diagnose(verdict.failure)
                return verdict
            if ex.grad:
                grad = _grad_attempt(grads[i] if i < len(grads) else None)
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


def _progress_lines(job: Path) -> list[str]:
    try:
        with open(job / "progress.txt", "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 65536))
            return fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _judge_results(
    exercises: list[Exercise],
    cells: list[_Cell],
    job: Path,
    end: _ProcessEnd,
    sets_of: dict[str, list[tuple[int | None, list]]],
    settings: _Settings,
    results: dict[str, CheckResult],
    seconds: dict[str, float],
    run: _Run,
) -> None:
    """Judge each exercise from its result file; say why for those without one."""
    lines = _progress_lines(job)
    finished = bool(lines) and lines[-1] == "done"
    last = lines[-1] if lines else "starting"
    ended = "" if finished else _why_it_ended(end, settings)
    try:
        run.fence = json.loads((job / "results" / "fence.json").read_text())["fence"]
    except (OSError, ValueError, KeyError, TypeError):
        run.fence = ""
    if not finished:
        if last.startswith("cell "):
            where = f"while running your cell for `{last[5:]}`"
        elif last.startswith("exercise "):
            where = f"while calling your `{last[9:]}`"
        else:
            where = "before your code ran"
        ended = f"{where}, {ended}".rstrip(".?") + ("?" if ended.endswith("?") else "")
    cell_of = {name: cell for cell in cells for name in cell.exercises}
    for ex in exercises:
        path = job / "results" / f"{ex.name}.pt"
        cell = cell_of.get(ex.name)
        cell_record = _cell_record(job, cell.index) if cell else None
        if not path.exists():
            if not finished and last == f"exercise {ex.name}":
                results[ex.name] = _failed(
                    ex, f"not graded: {ended}" + ("" if ended.endswith("?") else "."), "stopped"
                )
            elif not finished:
                results[ex.name] = _failed(
                    ex,
                    f"not graded, as the notebook's grading stopped: {ended}"
                    + ("" if ended.endswith("?") else "."),
                    "stopped",
                )
            else:
                results[ex.name] = _failed(ex, "no result came back from grading.", "no_result")
            continue
        try:
            record = _load_result(path)
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
        if result.status != "pass" and cell_record and cell_record.get("kind") not in (None, "ok"):
            result.message = _cell_message(cell_record, settings) + "\n" + result.message
        results[ex.name] = result


def _cell_record(job: Path, index: int) -> dict[str, Any] | None:
    try:
        path = job / "results" / f"cell-{index}.json"
        if path.stat().st_size > 1 << 20:
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
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
