"""The rehearsal's rollback plan: the runbook's Quick/Full rollback written for this stack's hosts and commands.

The stack commits it in the app checkout (``docs/ROLLBACK.md``) like a team would, so the precutover
check ("Rollback plan documented": exists, committed, names the previous ``DATABASE_URL`` host and the
restart command) runs against a real document.  Only the host and port are taken from the URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["PLAN_PATH", "render_rollback_plan"]

#: Where the plan lives inside the app checkout.
PLAN_PATH = "docs/ROLLBACK.md"


def render_rollback_plan(*, run_id: str, lead: str, old_database_url: str, restart_command: str,
                         health_url: str | None, config_path: str | None) -> str:
    """The plan as Markdown; ``old_database_url`` contributes its host and port only."""
    parts = urlsplit(old_database_url)
    host = parts.hostname or "?"
    where = f"{host}:{parts.port}" if parts.port else host
    database = parts.path.lstrip("/") or "?"
    config = f" --config {config_path}" if config_path else ""
    health = health_url or "the app's /health"
    return f"""# Rollback plan ({run_id})

Owner: {lead}. Decide with the escalation contact; alert the incident channel as soon as a trigger fires.

## Triggers (runbook)
- Error rate > 5%
- RLS data leakage detected
- Database connection failures
- Critical feature broken
- Vector search completely broken

## Quick rollback (< 10 minutes)
1. Enable maintenance mode: `cutover action maintenance on{config}`
2. Put the previous `DATABASE_URL` back in the app's `.env`: the old database at host `{host}`
   (`{where}`, database `{database}`). The full value is restored from the switch's backup
   (`cutover action env-restore{config}`); the password is never written here.
3. Restart the backend: `{restart_command}`
4. Verify the old system: `curl {health}` answers healthy and the threads API serves the old counts.
5. Keep the Supabase data intact for the investigation: drop nothing.
6. Alert the team (incident channel), disable maintenance once verified, schedule the post-mortem.

All of it in one command: `cutover action rollback{config}`.
"""
