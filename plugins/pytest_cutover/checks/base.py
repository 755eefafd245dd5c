"""The result every probe returns, and the few helpers every probe module shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_cutover.redact import redact, redact_obj
from pytest_cutover.util.aio import run_sync  # re-exported: the checks import it from here

if TYPE_CHECKING:
    from pytest_cutover.config import CutoverConfig

__all__ = ["CheckResult", "config_relative", "result", "run_sync"]

T = TypeVar("T")


@dataclass(frozen=True)
class CheckResult:
    """What a probe found: ``ok``, one line of ``evidence``, measured ``figures`` and actionable ``problems``.

    ``problems`` are sentences an operator can act on ("... : run ALTER TABLE ..."); ``message`` joins
    them for an assertion.  Every string is redacted when the result is built.
    """

    name: str
    ok: bool
    evidence: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """The problems (or, when there are none, the evidence) as one redacted line."""
        return "; ".join(self.problems) if self.problems else self.evidence

    def __bool__(self) -> bool:
        return self.ok


def result(name: str, problems: Iterable[str], evidence: str, figures: Mapping[str, Any] | None = None) -> CheckResult:
    """A :class:`CheckResult` that is ok exactly when there are no problems (all strings redacted)."""
    found = tuple(redact(p) for p in problems)
    return CheckResult(name=name, ok=not found, evidence=redact(evidence), figures=redact_obj(dict(figures or {})),
                       problems=found)


def config_relative(config: CutoverConfig | None, value: str) -> Path:
    """A path from the config: absolute as given, else relative to the config file's folder."""
    path = Path(value).expanduser()
    if not path.is_absolute() and config is not None and config.path:
        path = Path(config.path).parent / path
    return path
