"""The rollback plan check on real, throwaway git checkouts: committed, names the host and the restart command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_cutover.checks import rollback_plan
from pytest_cutover.config import parse_config

PASSWORD = "s3cr3t-Old-pw-77"
OLD_URL = f"postgresql+asyncpg://app_user:{PASSWORD}@old-postgres.internal:5432/dac"
SOURCE_URL = f"postgresql://admin:{PASSWORD}x@old-primary.internal:5432/dac"
RESTART = "sudo systemctl restart syntra-backend"
GOOD_PLAN = """# Rollback
1. Maintenance on.
2. DATABASE_URL back to old-postgres.internal:5432 (value from the switch backup).
3. Restart:   sudo systemctl   restart syntra-backend
4. curl https://api.example.com/health
"""


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0"}
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false",
                    "-c", "init.defaultBranch=main", *args], cwd=repo, env=env, check=True, capture_output=True,
                   timeout=30)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """An app checkout with a committed plan, a git-ignored .env holding the old DATABASE_URL."""
    repo = tmp_path / "backend"
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "ROLLBACK.md").write_text(GOOD_PLAN)
    (repo / ".gitignore").write_text(".env\nnotes/\n")
    (repo / ".env").write_text(f"MAINTENANCE_MODE=false\nDATABASE_URL={OLD_URL}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "app with its rollback plan")
    return repo


def _config(tmp_path: Path, **app: Any) -> Any:
    data = {"source": {"database_url": SOURCE_URL},
            "app": {"env_file": "backend/.env", "restart_command": RESTART, "rollback_plan": "backend/docs/ROLLBACK.md",
                    **app}}
    return parse_config({k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in data.items()}, env={},
                        path=str(tmp_path / "cutover.toml"))


def _never_the_password(check: Any) -> None:
    text = " ".join([check.message, check.evidence, *check.problems, repr(dict(check.figures))])
    assert PASSWORD not in text


def test_a_committed_plan_naming_host_and_command_passes(tmp_path: Path, checkout: Path) -> None:
    check = rollback_plan.check_rollback_plan(_config(tmp_path))
    assert check.ok, check.message
    assert check.figures["git"] == "committed" and check.figures["previous_database_host"] == "old-postgres.internal"
    assert "previous DATABASE_URL host old-postgres.internal (from DATABASE_URL in app.env_file)" in check.evidence
    _never_the_password(check)


def test_missing_config_key_and_missing_file(tmp_path: Path, checkout: Path) -> None:
    missing = rollback_plan.check_rollback_plan(_config(tmp_path, rollback_plan=None))
    assert not missing.ok and missing.problems[0].startswith("no rollback plan configured (app.rollback_plan): ")
    absent = rollback_plan.check_rollback_plan(_config(tmp_path, rollback_plan="backend/docs/NOPE.md"))
    assert absent.problems == (f"rollback plan {checkout / 'docs' / 'NOPE.md'} does not exist (app.rollback_plan = "
                               "'backend/docs/NOPE.md', relative to the config file): write it and commit it, or fix "
                               "the path",)


def test_an_uncommitted_change_fails(tmp_path: Path, checkout: Path) -> None:
    plan = checkout / "docs" / "ROLLBACK.md"
    plan.write_text(GOOD_PLAN + "6. Call Sam.\n")
    check = rollback_plan.check_rollback_plan(_config(tmp_path))
    assert check.problems == (f"rollback plan {plan} has uncommitted changes: review and commit them (git commit -- "
                              "ROLLBACK.md), so the plan on the night is the reviewed one",)
    assert check.figures["git"] == "modified"


def test_an_untracked_or_ignored_or_unversioned_plan_fails(tmp_path: Path, checkout: Path) -> None:
    (checkout / "docs" / "NEW.md").write_text(GOOD_PLAN)
    untracked = rollback_plan.check_rollback_plan(_config(tmp_path, rollback_plan="backend/docs/NEW.md"))
    assert untracked.problems == (f"rollback plan {checkout / 'docs' / 'NEW.md'} is untracked: git add and commit it "
                                  "(and push)",)
    (checkout / "notes").mkdir()
    (checkout / "notes" / "plan.md").write_text(GOOD_PLAN)
    ignored = rollback_plan.check_rollback_plan(_config(tmp_path, rollback_plan="backend/notes/plan.md"))
    assert ignored.figures["git"] == "ignored" and "is git-ignored, so never committed" in ignored.message
    loose = tmp_path / "plan.md"  # tmp_path itself is no git checkout
    loose.write_text(GOOD_PLAN)
    unversioned = rollback_plan.check_rollback_plan(_config(tmp_path, rollback_plan="plan.md"))
    assert unversioned.figures["git"] == "no-git"
    assert unversioned.message.startswith(f"rollback plan {loose} is not committed anywhere ")


def test_a_plan_without_the_host_or_the_command_fails_saying_what_to_write(tmp_path: Path, checkout: Path) -> None:
    plan = checkout / "docs" / "ROLLBACK.md"
    plan.write_text("# Rollback\nPut DATABASE_URL back to old-postgres.internal-2 and restart the service.\n")
    _git(checkout, "commit", "-q", "-am", "vague plan")
    check = rollback_plan.check_rollback_plan(_config(tmp_path))
    assert check.problems == (
        f"rollback plan {plan} does not name the previous DATABASE_URL host old-postgres.internal (port 5432) (from "
        "DATABASE_URL in app.env_file): write where DATABASE_URL goes back to (the host, never the password)",
        f"rollback plan {plan} does not contain the restart command '{RESTART}' (app.restart_command): write the "
        "exact command the rollback runs",
    )
    _never_the_password(check)


def test_the_host_falls_back_to_the_source_url_and_stop_start_commands(tmp_path: Path, checkout: Path) -> None:
    (checkout / ".env").write_text("MAINTENANCE_MODE=false\n")  # no DATABASE_URL line: use [source] database_url
    check = rollback_plan.check_rollback_plan(_config(tmp_path, restart_command=None, stop_command="svc stop",
                                                      start_command="svc start"))
    assert check.problems == (
        f"rollback plan {checkout / 'docs' / 'ROLLBACK.md'} does not name the previous DATABASE_URL host "
        "old-primary.internal (port 5432) (from source.database_url): write where DATABASE_URL goes back to (the "
        "host, never the password)",
        f"rollback plan {checkout / 'docs' / 'ROLLBACK.md'} does not contain the restart command 'svc stop' "
        "(app.stop_command and app.start_command): write the exact command the rollback runs",
        f"rollback plan {checkout / 'docs' / 'ROLLBACK.md'} does not contain the restart command 'svc start' "
        "(app.stop_command and app.start_command): write the exact command the rollback runs",
    )
    _never_the_password(check)


def test_a_plan_holding_the_password_fails_without_printing_it(tmp_path: Path, checkout: Path) -> None:
    plan = checkout / "docs" / "ROLLBACK.md"
    plan.write_text(GOOD_PLAN + f"\nDATABASE_URL={OLD_URL}\n")
    _git(checkout, "commit", "-q", "-am", "oops")
    check = rollback_plan.check_rollback_plan(_config(tmp_path))
    assert check.problems == (
        f"rollback plan {plan} contains the password of the previous DATABASE_URL (from DATABASE_URL in "
        "app.env_file): remove it (name the host only; the value is restored from the switch's backup), commit, and "
        "rotate the password if the plan was shared",)
    _never_the_password(check)


def test_previous_database_never_shows_its_password() -> None:
    found = rollback_plan.previous_database(parse_config({"source": {"database_url": SOURCE_URL}}, env={}))
    assert found is not None and found.host == "old-primary.internal" and found.port == 5432
    assert PASSWORD not in repr(found) and PASSWORD not in str(found)
    assert rollback_plan.previous_database(parse_config({}, env={})) is None


@pytest.mark.parametrize(("text", "needle", "found"), [
    ("host old-db:5432", "old-db", True),
    ("host `old-db`.", "old-db", True),
    ("host OLD-DB", "old-db", True),
    ("host old-db-2", "old-db", False),
    ("host xold-db", "old-db", False),
    ("10.0.0.12", "10.0.0.1", False),
])
def test_mentions_is_a_whole_word(text: str, needle: str, found: bool) -> None:
    assert rollback_plan.mentions(text, needle) is found
