"""A real webhook receiver on a free loopback port, for rehearsals and self-tests.

It records every POST (path and raw body) so a rehearsal can assert on what users, stakeholders
and the incident channel were actually sent.  Paths starting ``/fail`` answer 500 every time and
``/flaky`` answer 500 once then 200, to rehearse a receiver that is down.  Start it with
``with WebhookReceiver() as rx: ... rx.url("/users")``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["REHEARSAL_CHANNELS", "Received", "WebhookReceiver", "rehearsal_notify_config", "rehearsal_notify_toml"]


@dataclass(frozen=True)
class Received:
    """One POST the receiver got."""

    path: str
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class WebhookReceiver:
    """An HTTP listener on ``127.0.0.1:<free port>`` in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = receiver._record(Received(self.path, raw))
                failing = self.path.startswith("/fail") or (self.path.startswith("/flaky") and seen == 1)
                status, body = (500, b"receiver down") if failing else (200, b"ok")
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the records are the log
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cutover-webhook-receiver", daemon=True)

    def _record(self, item: Received) -> int:
        with self._lock:
            self._received.append(item)
            return sum(1 for r in self._received if r.path == item.path)

    def url(self, path: str) -> str:
        """The URL of ``path`` on this receiver."""
        return f"{self.base}{path}"

    def bodies(self, path: str | None = None) -> list[Received]:
        """What was received (on ``path``, or everywhere), in arrival order."""
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The rehearsal's channels: users and stakeholders hear maintenance on and off, the incident
#: channel (Slack-shaped, required) hears a rollback. Path -> (kind, events, required).
REHEARSAL_CHANNELS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "users": ("webhook", ("maintenance-enabled", "maintenance-disabled"), False),
    "stakeholders": ("webhook", ("maintenance-enabled",), False),
    "incident": ("slack", ("rollback",), True),
}


def rehearsal_notify_config(receiver: WebhookReceiver) -> dict[str, Any]:
    """``{"notify": {...}}``: every rehearsal channel pointing at ``receiver`` (path ``/<channel>``), for a
    rehearsal's cutover.toml."""
    return {"notify": {name: {"kind": kind, "url": receiver.url("/" + name), "events": list(events),
                              "required": required, "timeout_s": 5}
                       for name, (kind, events, required) in REHEARSAL_CHANNELS.items()}}


def rehearsal_notify_toml(receiver: WebhookReceiver) -> str:
    """:func:`rehearsal_notify_config` as TOML (``[notify.*]`` sections)."""
    import tomli_w

    return tomli_w.dumps(rehearsal_notify_config(receiver))
