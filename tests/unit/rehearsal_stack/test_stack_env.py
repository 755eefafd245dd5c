"""stack.env: every value shell-quoted so that ``set -a; . stack.env`` reads it back exactly in sh and bash."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_cutover.actions.env_switch import secrets_folder
from pytest_cutover.rehearsal.stack import EmbeddedStack, env_text, read_env_file

VALUES = {
    "API_URL": "https://127.0.0.1:8443",
    "POOLER_URL": "postgresql://app_user:p%2Fw@127.0.0.1:6543/postgres?sslmode=verify-full&sslrootcert=/tmp/ca.pem",
    "SESSION_POOLER_URL": "postgresql://u:pw@h:5432/d?a=1&b=2;echo pwned",
    "ADMIN_TOKEN": "tok'en\"with$(date)`x`\\ and spaces",
    "CA_FILE": "/tmp/dir with space/ca.pem",
}


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_sourcing_stack_env_gives_back_every_value_exactly(tmp_path: Path, shell: str) -> None:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / "stack.env"
    path.write_text(env_text(VALUES, "# header\n"))
    script = f'set -a; . "{path}"; ' + "; ".join(f'printf "%s\\0" "${k}"' for k in VALUES)
    done = subprocess.run([exe, "-c", script], capture_output=True, timeout=10, check=True)
    assert done.stdout.decode().split("\0")[:-1] == list(VALUES.values())
    assert done.stderr == b""
    assert read_env_file(path) == VALUES


def test_the_served_stack_env_lives_in_the_secrets_folder_and_goes_with_the_stack(tmp_path: Path) -> None:
    folder = secrets_folder(tmp_path / "reports", "r1")
    assert folder == tmp_path / "reports" / ".secrets" / "r1"
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.parent.stat().st_mode & 0o777 == 0o700
    stack = EmbeddedStack(tmp_path / "stack")
    served = folder / "stack.env"
    served.write_text(env_text({"A": "1"}))
    stack.served_env_path = served
    stack.stop()
    assert not served.exists()
