"""``python appctl.py start|stop DIR``: the fake app's service manager (like ``systemctl start|stop``).

``start`` launches uvicorn detached (its own session), writes DIR/app.pid and returns at once, as
``systemctl start`` or ``docker compose up -d`` do: whether the app really came up is for /health to say.
``stop`` sends SIGTERM to that pid, waits for it to exit (SIGKILL after 10 s) and removes the pid file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _env(app_dir: Path) -> dict[str, str]:
    out = {}
    for line in (app_dir / ".env").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def start(app_dir: Path) -> int:
    pid_file = app_dir / "app.pid"
    if pid_file.exists() and _alive(int(pid_file.read_text())):
        print("already running")
        return 0
    env = _env(app_dir)
    argv = [sys.executable, "-m", "uvicorn", "fakeapp:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
            "--port", env["APP_PORT"], "--ssl-certfile", env["TLS_CERT"], "--ssl-keyfile", env["TLS_KEY"],
            "--log-level", "warning", "--lifespan", "on"]
    with open(app_dir / "uvicorn.out", "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "FAKEAPP_DIR": str(app_dir)}, start_new_session=True)
    pid_file.write_text(str(proc.pid))
    print(f"started pid {proc.pid}")
    return 0


def stop(app_dir: Path) -> int:
    pid_file = app_dir / "app.pid"
    if not pid_file.exists():
        print("not running")
        return 0
    pid = int(pid_file.read_text())
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if not _alive(pid):
            break
        os.kill(pid, sig)
        end = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
    pid_file.unlink()
    print(f"stopped pid {pid}")
    return 0


if __name__ == "__main__":
    verb, folder = sys.argv[1], Path(sys.argv[2])
    sys.exit(start(folder) if verb == "start" else stop(folder))
