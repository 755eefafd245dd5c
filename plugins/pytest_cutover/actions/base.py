"""What every action shares: a ledger record with before/after state, a deadline, one error type.

An action changes the world (maintenance, ``.env``, restart, rollback), so each one
leaves a ``kind: "action"`` record in the run ledger saying what the state was
before, what it is after, whether it worked and how long it took.  Records are
redacted by the ledger; the details built here are redacted too, so a DSN shows
as ``postgresql://user:***@host:6543/db``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_cutover.config import lookup
from pytest_cutover.errors import ConfigError, CutoverError
from pytest_cutover.redact import redact, redact_obj
from pytest_cutover.util.aio import run_sync  # re-exported: the actions' callers import it from here

if TYPE_CHECKING:
    from pytest_cutover.context import RunContext

__all__ = ["ActionError", "ActionRecord", "ActionResult", "Deadline", "append_action", "config_path", "recorded",
           "require", "run_sync"]

T = TypeVar("T")


class ActionError(CutoverError, RuntimeError):
    """An action could not do what it was asked; ``step`` names where it stopped."""

    def __init__(self, message: str, *, hint: str | None = None, step: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.step = step


@dataclass(frozen=True)
class ActionResult:
    """The outcome of one action, as recorded in the ledger (every string already redacted)."""

    action: str
    ok: bool
    before: dict[str, Any]
    after: dict[str, Any]
    detail: str
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ActionRecord:
    """Filled in by the action while it runs; turned into an :class:`ActionResult` at the end."""

    action: str
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    result: ActionResult | None = None

    def outcome(self) -> ActionResult:
        """The recorded result (available once the ``recorded`` block has ended)."""
        if self.result is None:
            raise RuntimeError(f"action {self.action} has not finished yet")
        return self.result


class Deadline:
    """A point in monotonic time that every wait inside one action respects."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds = float(seconds)
        self.what = what
        self._start = time.monotonic()
        self._end = self._start + self.seconds

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def sub(self, seconds: float, what: str) -> Deadline:
        """A shorter deadline inside this one (never longer than what is left)."""
        return Deadline(min(seconds, self.remaining()), what)


@contextmanager
def recorded(ctx: RunContext, action: str, *, before: dict[str, Any] | None = None) -> Iterator[ActionRecord]:
    """Run the body as action ``action`` and append its ``kind: "action"`` record to the ledger.

    The record is written whether the body succeeds or raises.  Unexpected exceptions
    are wrapped in :class:`ActionError` so callers see one error type with a message
    naming the action.
    """
    rec = ActionRecord(action=action, before=dict(before or {}))
    start = time.monotonic()
    ok = False
    error: BaseException | None = None
    try:
        yield rec
        ok = True
    except CutoverError as exc:
        error = exc
        rec.detail = str(exc)
        raise
    except Exception as exc:
        error = ActionError(f"action {action} failed: {exc.__class__.__name__}: {exc}",
                            hint="see the ledger record of this action for the state before the failure")
        rec.detail = str(error)
        raise error from exc
    finally:
        result = ActionResult(action=action, ok=ok, before=redact_obj(rec.before), after=redact_obj(rec.after),
                              detail=redact(rec.detail if rec.detail or error is None else str(error)),
                              duration_s=round(time.monotonic() - start, 3))
        rec.result = result
        append_action(ctx, result)


def append_action(ctx: RunContext, result: ActionResult) -> None:
    """Append one ``kind: "action"`` record (stamped with the run's host, user, revision...)."""
    ctx.ledger.append({"kind": "action", **ctx.stamp(), **result.as_dict()})


def require(ctx: RunContext, key: str, why: str) -> Any:
    """The config value at ``key``, or a :class:`ConfigError` naming the key and what needs it."""
    value = lookup(ctx.config, key)
    if value is None or value == "":
        raise ConfigError(f"missing config key {key} (needed to {why})",
                          hint=f"set {key} in cutover.toml (see `cutover config check`)")
    return value


def config_path(ctx: RunContext, value: str) -> Path:
    """A path from the config: absolute as given, else relative to the config file's folder."""
    path = Path(value).expanduser()
    if not path.is_absolute() and ctx.config is not None and ctx.config.path:
        path = Path(ctx.config.path).parent / path
    return path
