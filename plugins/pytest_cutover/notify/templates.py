"""The words of a notification, rendered with jinja2 from the run's facts and always redacted.

A channel may replace the built-in text with its own ``template``; both see the same
variables (:func:`message_facts`).  Rendering is sandboxed and strict: an unknown
variable is a configuration error, not a silent blank in a message to users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import redact, redact_obj
from pytest_cutover.stages import ROLLBACK

__all__ = ["DEFAULT_TEMPLATES", "PHASE", "message_facts", "render_message"]

#: What the run's state is, in words, at each announced moment.
PHASE = {
    "maintenance-enabled": "MAINTENANCE",
    "maintenance-disabled": "LIVE",
    "rollback": ROLLBACK,
}

_WINDOW = ("{% if window_start or window_end %} Maintenance window: {{ window_start or '?' }}"
           " to {{ window_end or '?' }}.{% endif %}")
_TAIL = " Run {{ run }}{% if lead %}, lead {{ lead }}{% endif %}. Report: {{ report }}"

DEFAULT_TEMPLATES = {
    "maintenance-enabled": "[{{ status }}] The database cutover has started: the service is in maintenance mode."
                           + _WINDOW + _TAIL,
    "maintenance-disabled": "[{{ status }}] Maintenance is complete: the service is back on the new database."
                            + _WINDOW + _TAIL,
    "rollback": "[{{ status }}] Rollback trigger fired during the cutover"
                "{% if details.triggers %}: {{ details.triggers | join(', ') }}{% endif %}."
                "{% if details.evidence %} Evidence: {{ details.evidence }}.{% endif %}" + _TAIL,
}
_GENERIC = "[{{ status }}] Cutover event {{ event }}." + _TAIL

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def message_facts(event: str, details: Mapping[str, Any], *, run: str, lead: str | None,
                  window_start: str | None, window_end: str | None, report: str) -> dict[str, Any]:
    """The variables a template sees (all redacted): event, status, run, lead, window, report, details."""
    return redact_obj({
        "event": event,
        "status": PHASE.get(event, event),
        "run": run,
        "lead": lead,
        "window_start": window_start,
        "window_end": window_end,
        "report": report,
        "details": dict(details),
    })


def render_message(facts: Mapping[str, Any], template: str | None = None, *, channel: str = "?") -> str:
    """The message text for ``facts``; ``template`` overrides the built-in one for the event."""
    source = template or DEFAULT_TEMPLATES.get(str(facts.get("event")), _GENERIC)
    try:
        text = _env.from_string(source).render(**facts)
    except TemplateError as exc:
        raise ConfigError(f"notify.{channel}.template cannot be rendered: {exc}",
                          hint="use only event, status, run, lead, window_start, window_end, report, details") from None
    return redact(text.strip())
