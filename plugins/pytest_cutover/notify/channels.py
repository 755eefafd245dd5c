"""Deliver one message to one channel: a JSON webhook, a Slack incoming webhook, or a command.

Delivery never raises for a channel that is down: it returns a :class:`Delivery` saying what
happened (HTTP status or exit code, attempts, a redacted one-line detail) and the caller decides
whether that is a warning or a failed stage.  Connect errors and HTTP 5xx are retried with
tenacity (the message cannot have been accepted); a read timeout is not, so a slow receiver is
never told twice.  The webhook URL is a secret (Slack's carries its token): no message names it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from pytest_cutover.config import NotifyChannel
from pytest_cutover.redact import redact, reveal

__all__ = ["Delivery", "deliver", "deliver_command", "deliver_http", "http_body"]

_DETAIL_CHARS = 300


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery: ``status`` is the HTTP status or the command's exit code."""

    ok: bool
    status: int | None
    detail: str
    attempts: int = 1


class _ServerError(Exception):
    """An HTTP 5xx: the receiver did not take the message, so it is safe to send again."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _short(text: str, url: str | None = None) -> str:
    if url:
        text = text.replace(url, "<webhook url>")
    line = " ".join(str(text).split())
    return redact(line[:_DETAIL_CHARS])


def http_body(kind: str, message: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON a receiver gets: Slack's ``{"text"}``, or the generic event document."""
    if kind == "slack":
        return {"text": message}
    return {
        "event": facts.get("event"),
        "status": facts.get("status"),
        "run": facts.get("run"),
        "lead": facts.get("lead"),
        "window": {"start": facts.get("window_start"), "end": facts.get("window_end")},
        "report": facts.get("report"),
        "details": facts.get("details") or {},
        "text": message,
    }


def deliver_http(channel: NotifyChannel, body: Mapping[str, Any], *, wait_max_s: float = 2.0) -> Delivery:
    """POST ``body`` as JSON; retry connect errors and 5xx up to ``channel.retries`` attempts."""
    url = reveal(channel.url) or ""
    attempts = 0

    def post(client: httpx.Client) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        response = client.post(url, json=dict(body))
        if response.status_code >= 500:
            raise _ServerError(response)
        return response

    retrying = Retrying(
        stop=stop_after_attempt(channel.retries),
        wait=wait_exponential(multiplier=0.2, max=wait_max_s),
        retry=retry_if_exception_type((httpx.ConnectError, httpx.ConnectTimeout, _ServerError)),
        reraise=True,
    )
    try:
        with httpx.Client(timeout=channel.timeout_s, follow_redirects=False) as client:
            response = retrying(post, client)
    except _ServerError as exc:
        return Delivery(False, exc.response.status_code,
                        _short(f"HTTP {exc.response.status_code} after {attempts} attempt(s): {exc.response.text}",
                               url), attempts)
    except (httpx.HTTPError, httpx.InvalidURL, RetryError) as exc:
        return Delivery(False, None, _short(f"{type(exc).__name__} after {attempts} attempt(s): {exc}", url),
                        attempts)
    ok = 200 <= response.status_code < 300
    detail = f"HTTP {response.status_code}" + ("" if ok else f": {response.text}")
    return Delivery(ok, response.status_code, _short(detail, url), attempts)


def deliver_command(channel: NotifyChannel, message: str, env: Mapping[str, str]) -> Delivery:
    """Run ``channel.command`` (shlex argv, no shell) with the message on stdin."""
    argv = shlex.split(channel.command or "")
    try:
        done = subprocess.run(argv, input=message, capture_output=True, text=True, timeout=channel.timeout_s,
                              env={**os.environ, **env}, check=False)
    except FileNotFoundError:
        return Delivery(False, None, _short(f"command not found: {argv[0]}"))
    except PermissionError:
        return Delivery(False, None, _short(f"command not executable: {argv[0]}"))
    except OSError as exc:
        return Delivery(False, None, _short(f"{argv[0]} could not start: {exc.strerror or exc}"))
    except subprocess.TimeoutExpired:
        return Delivery(False, None, _short(f"{argv[0]} timed out after {channel.timeout_s:g}s"))
    if done.returncode == 0:
        return Delivery(True, 0, _short(f"{argv[0]} exited 0"))
    tail = (done.stderr or done.stdout or "").strip().splitlines()[-1:] or ["no output"]
    return Delivery(False, done.returncode, _short(f"{argv[0]} exited {done.returncode}: {tail[0]}"))


def deliver(channel: NotifyChannel, message: str, facts: Mapping[str, Any]) -> Delivery:
    """Send ``message`` through ``channel``; never raises for a receiver that is down."""
    if channel.kind == "command":
        env = {"CUTOVER_EVENT": str(facts.get("event") or ""), "CUTOVER_RUN": str(facts.get("run") or ""),
               "CUTOVER_STATUS": str(facts.get("status") or "")}
        return deliver_command(channel, message, env)
    return deliver_http(channel, http_body(channel.kind, message, facts))
