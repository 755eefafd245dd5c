"""Control the rehearsal app from outside the process that built the stack: restart, stop, start, status, stop-all.

Why: the cutover's switch step is "edit .env, then run the configured restart command", and the
rehearsal must offer a *real* command for that (``[app] restart_command``), run by the suite in its
own subprocess.  The stack records how it started the app (argv, cwd, environment, log, health URL,
CA) and the app's current pid in ``<stack dir>/stack-state.json`` (0600); this module reads it,
stops the recorded pid (checking its start time, so a recycled pid is never hit), starts the app
again in its own session and waits until ``/health`` answers (200, or 503 while in maintenance).
The stack reads the same file when it stops, so an app restarted here is stopped too.  It also
records every other part's pid there, so ``stop-all`` can clean up after an owner that was killed.

When the recorded app is a container (the containers stack with the local image set: ``"container"`` in the
record), stop is ``docker stop`` (SIGTERM, then SIGKILL after a grace period), start is ``docker start`` of the
same container (its ``.env`` is read again from the bind-mounted stack folder) and the recorded pid is the
container's main process as the host sees it, so the monitor's ``app_pid_file`` follows the restarts too.

    python -m pytest_cutover.rehearsal.ctl restart /path/to/stack
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_cutover.redact import redact
from pytest_cutover.rehearsal.errors import RehearsalError
from pytest_cutover.rehearsal.procs import ManagedProcess
from pytest_cutover.util.wait import wait_until

__all__ = ["PID_FILE", "STATE_FILE", "app_answers", "main", "read_state", "restart_app", "start_app", "stop_all",
           "stop_app", "write_state"]

STATE_FILE = "stack-state.json"
PID_FILE = "run/app.pid"
#: Health answers that mean "the app is up" (503 is the maintenance answer).
UP_STATUSES = (200, 503)
#: ``docker stop``'s grace period before SIGKILL, and the Docker API's own deadline (beyond that grace).
CONTAINER_STOP_S = 10
DOCKER_TIMEOUT_S = 60


def read_state(stack_dir: Path) -> dict[str, Any]:
    path = Path(stack_dir) / STATE_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RehearsalError(f"no rehearsal stack at {stack_dir} ({STATE_FILE} is missing)",
                             hint="pass the stack folder that holds cutover.toml; is the stack running?") from None
    except (OSError, ValueError) as exc:
        raise RehearsalError(f"{path} is unreadable: {exc}", hint="rebuild the stack") from None


def write_state(stack_dir: Path, state: Mapping[str, Any]) -> None:
    """Atomic rewrite, mode 0600 (the recorded environment holds secrets)."""
    path = Path(stack_dir) / STATE_FILE
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
    # The app's pid file: what a monitor reads the app's memory from ([monitor] app_pid_file).
    pid_file = Path(stack_dir) / PID_FILE
    pid = (state.get("app") or {}).get("pid")
    if pid:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{pid}\n")
    else:
        pid_file.unlink(missing_ok=True)


def _process_if_same(pid: int | None, create_time: float | None) -> Any:
    """The psutil process for ``pid`` if it is still the one we started (same start time), else None."""
    if not pid:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.NoSuchProcess:
        return None


def app_answers(health_url: str, ca_file: str | None, timeout: float = 2.0) -> bool:
    """True when ``GET health_url`` answers 200 or 503 (maintenance) over verified TLS."""
    import httpx

    verify: Any = True
    if ca_file:
        import ssl

        verify = ssl.create_default_context(cafile=ca_file)
    try:
        response = httpx.get(health_url, verify=verify, timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code in UP_STATUSES


def _wait_gone(procs: Sequence[Any], timeout: float) -> bool:
    """Wait until every process has exited; a zombie counts as exited (its parent, maybe the stack
    process, reaps it later; psutil.wait_procs would wait for that reaping when it is not our child)."""
    import psutil

    def gone() -> bool:
        for proc in procs:
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                pass
        return True

    return wait_until(gone, timeout, pause=0.05)


def _container(app: Mapping[str, Any]) -> tuple[Any, Any]:
    """The Docker client and the app's container (``RehearsalError`` when it is gone)."""
    import docker
    import docker.errors

    client = docker.from_env(version="auto", timeout=DOCKER_TIMEOUT_S + CONTAINER_STOP_S)
    try:
        return client, client.containers.get(app["container"])
    except docker.errors.NotFound:
        client.close()
        raise RehearsalError(f"the app container {app.get('container_name', app['container'])} does not exist",
                             hint="the stack that created it has stopped; start a new rehearsal") from None


def _container_logs(box: Any, n: int = 20) -> str:
    try:
        return redact(box.logs(tail=n).decode("utf-8", "replace").strip())
    except Exception:  # the logs are a help for the message, never its cause
        return ""


def _stop_container(app: dict[str, Any]) -> str:
    try:
        client, box = _container(app)
    except RehearsalError:
        return f"app container {app.get('container_name', app['container'])} does not exist"
    try:
        box.reload()
        if box.status != "running":
            return f"app container {box.name} was not running"
        box.stop(timeout=CONTAINER_STOP_S)
        return f"app container {box.name} stopped (pid {app.get('pid')})"
    finally:
        client.close()


def _start_container(app: dict[str, Any], timeout: float) -> None:
    """``docker start`` the app's container, wait for /health; a container that exits fails at once."""
    client, box = _container(app)
    try:
        box.start()

        def up() -> bool:
            box.reload()
            if box.status in ("exited", "dead"):
                raise RehearsalError(f"the app container {box.name} exited with code "
                                     f"{box.attrs['State'].get('ExitCode')} at start:\n{_container_logs(box)}",
                                     hint=f"docker logs {box.name}")
            return app_answers(app["health_url"], app.get("ca_file"))

        if not wait_until(up, timeout, pause=0.2):
            tail = _container_logs(box)
            box.stop(timeout=CONTAINER_STOP_S)
            raise RehearsalError(f"the app container {box.name} did not answer {app['health_url']} within "
                                 f"{timeout:.0f}s:\n{tail}", hint=f"docker logs {box.name}")
        import psutil

        app["pid"] = box.attrs["State"]["Pid"]
        app["create_time"] = psutil.Process(app["pid"]).create_time()
    finally:
        client.close()


def stop_app(stack_dir: Path, *, timeout: float = 10.0) -> str:
    """Stop the app pid recorded in the state file (SIGTERM to its group, then SIGKILL), or its container."""
    state = read_state(stack_dir)
    app = state.get("app") or {}
    if app.get("container"):
        said = _stop_container(app)
        app["pid"] = app["create_time"] = None
        write_state(stack_dir, state)
        return said
    proc = _process_if_same(app.get("pid"), app.get("create_time"))
    if proc is None:
        return "app was not running"
    import psutil

    pid = proc.pid
    victims = [proc, *proc.children(recursive=True)]
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            for victim in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.send_signal(sig)
        if _wait_gone(victims, wait_s):
            break
    app["pid"] = None
    app["create_time"] = None
    state["app"] = app
    write_state(stack_dir, state)
    return f"app stopped (pid {pid})"


def start_app(stack_dir: Path, *, timeout: float = 60.0) -> ManagedProcess | None:
    """Start the app as recorded in the state file and wait until /health answers; records the new pid.
    Returns the process we started (``None`` for a container: Docker is its parent)."""
    state = read_state(stack_dir)
    app = state.get("app")
    if not app:
        raise RehearsalError(f"the stack at {stack_dir} has no app recorded", hint="it was built without services")
    if _process_if_same(app.get("pid"), app.get("create_time")) is not None:
        raise RehearsalError(f"the app is already running (pid {app['pid']})", hint="use restart")
    if app.get("container"):
        try:
            _start_container(app, timeout)
        finally:
            write_state(stack_dir, state)  # the new pid, or none
        return None
    proc = ManagedProcess("app", app["argv"], cwd=Path(app["cwd"]) if app.get("cwd") else None,
                          env=app.get("env"), log_path=Path(app["log_path"]))
    health_url, ca_file = app["health_url"], app.get("ca_file")
    try:
        proc.start(lambda: app_answers(health_url, ca_file), timeout=timeout)
    finally:
        # Record whatever is running now (nothing, if start failed and stopped it).
        import psutil

        app["pid"] = proc.pid if proc.running else None
        app["create_time"] = psutil.Process(proc.pid).create_time() if proc.running and proc.pid else None
        state["app"] = app
        write_state(stack_dir, state)
    return proc


def restart_app(stack_dir: Path, *, timeout: float = 60.0) -> str:
    """Stop then start the app; the evidence line says how long it took."""
    started = time.monotonic()
    stopped = stop_app(stack_dir)
    start_app(stack_dir, timeout=timeout)
    return (f"{stopped}; {_started(stack_dir)}, /health answered after {time.monotonic() - started:.1f}s")


def _started(stack_dir: Path) -> str:
    app = read_state(stack_dir).get("app") or {}
    where = f" in container {app.get('container_name')}" if app.get("container") else ""
    return f"app started{where} (pid {app.get('pid')})"


#: Stop order and signal per part (PostgreSQL: SIGINT is its fast shutdown; SIGTERM would wait for clients).
_STOP_ORDER = ("storage", "pgbouncer-transaction", "pgbouncer-session", "pgbouncer-old", "postgres")


def stop_all(stack_dir: Path, *, timeout: float = 15.0) -> str:
    """Stop every process a stack recorded (the app, then the others), by pid and start time.

    For a stack whose owner died without stopping it; a running owner stops its own stack.
    """
    state = read_state(stack_dir)
    done = [stop_app(stack_dir)]
    recorded = state.get("pids") or {}
    names = [n for n in _STOP_ORDER if n in recorded] + sorted(n for n in recorded if n not in _STOP_ORDER)
    for name in names:
        pid, ctime = recorded[name]
        proc = _process_if_same(pid, ctime)
        if proc is None:
            done.append(f"{name} was not running")
            continue
        victims = [proc, *proc.children(recursive=True)]
        first = signal.SIGINT if name == "postgres" else signal.SIGTERM
        for sig, wait_s in ((first, timeout), (signal.SIGKILL, 5.0)):
            for victim in victims:
                with contextlib.suppress(Exception):
                    victim.send_signal(sig)
            if _wait_gone(victims, wait_s):
                break
        done.append(f"{name} stopped (pid {pid})")
    state["pids"] = {}
    write_state(stack_dir, state)
    return "; ".join(done)


def _status(stack_dir: Path) -> str:
    state = read_state(stack_dir)
    lines = []
    app = state.get("app") or {}
    proc = _process_if_same(app.get("pid"), app.get("create_time"))
    up = app_answers(app["health_url"], app.get("ca_file")) if proc is not None and app.get("health_url") else False
    lines.append(f"app: {'running pid ' + str(proc.pid) if proc else 'stopped'}"
                 f"{', health answers' if up else ''}")
    for name, (pid, ctime) in sorted((state.get("pids") or {}).items()):
        alive = _process_if_same(pid, ctime) is not None
        lines.append(f"{name}: {'running pid ' + str(pid) if alive else 'stopped'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_cutover.rehearsal.ctl",
                                     description="Control the rehearsal app of a running stack.")
    parser.add_argument("command", choices=("restart", "stop", "start", "status", "stop-all"))
    parser.add_argument("stack_dir", type=Path, help="the stack folder (holds cutover.toml and stack-state.json)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for /health (default 60)")
    args = parser.parse_args(argv)
    try:
        if args.command == "restart":
            print(restart_app(args.stack_dir, timeout=args.timeout))
        elif args.command == "stop":
            print(stop_app(args.stack_dir))
        elif args.command == "stop-all":
            print(stop_all(args.stack_dir))
        elif args.command == "start":
            start_app(args.stack_dir, timeout=args.timeout)
            print(_started(args.stack_dir))
        else:
            print(_status(args.stack_dir))
    except RehearsalError as exc:
        print(f"error: {redact(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
