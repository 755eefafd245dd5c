"""A rehearsal whose database passwords hold a raw ``/`` and ``#`` runs to SUCCESS, and no piece of any
of them reaches the terminal or the reports.

The embedded stack's passwords come from ``secrets.token_urlsafe``; here a ``/`` and a ``#`` are put
inside each one (target, pooler, app and old-database roles).  The stack percent-encodes them in the URLs
it writes to the config, as an operator must; a raw one in the config stops at load (proven quickly, in
``tests/unit/core/test_redaction_fuzz.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.core.test_redaction_fuzz import forms

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("rehearsal-hostile")]

ROOT = Path(__file__).resolve().parents[3]

# ``python -c``: the migration's reader processes (spawn) do not re-run this code, they only read Qdrant.
SHIM = """
import json, os, secrets, sys, types
import pytest_cutover.rehearsal.postgres as pg
made = []
def hostile(n=None):
    base = secrets.token_urlsafe(n)
    made.append(base[:8] + "/" + base[8:16] + "#" + base[16:])
    return made[-1]
pg.secrets = types.SimpleNamespace(token_urlsafe=hostile)
from pytest_cutover.cli import main
try:
    code = main(sys.argv[2:])
finally:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(made, fh)
sys.exit(code)
"""


def test_a_rehearsal_with_slash_and_hash_in_every_password_succeeds_and_leaks_nothing(tmp_path: Path) -> None:
    secrets_file = tmp_path / "passwords.json"
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUTOVER_")}
    done = subprocess.run([sys.executable, "-c", SHIM, str(secrets_file), "rehearse", "--run", "slash-hash",
                           "--reports-dir", str(reports), "--monitor-window", "6"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "rehearsal slash-hash: SUCCESS" in out, out[-3000:]
    passwords = json.loads(secrets_file.read_text())
    assert passwords and all("/" in p and "#" in p for p in passwords)
    blobs = {"terminal": out.encode()}
    blobs |= {str(p): p.read_bytes() for p in reports.rglob("*") if p.is_file() and ".secrets" not in p.parts}
    assert len(blobs) > 10
    hits = [(where, len(form)) for pw in passwords for form in forms(pw)
            for where, blob in blobs.items() if form.encode() in blob]
    assert not hits, f"{len(hits)} pieces of passwords found, first in {hits[:3]}"
