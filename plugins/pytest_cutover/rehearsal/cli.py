"""``cutover rehearse``: build the embedded stack, run every stage against it in order, write the report.

The suite runs exactly as it would on the night: the stack writes a ``cutover.toml`` (secrets as
``${VAR}`` references, their values put in the environment) and the suite is started with
``--cutover-config`` pointing at it.  Exit code 0 only when the report says SUCCESS (with ``--until STAGE``:
when every stage up to it passed).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import click

from pytest_cutover.rehearsal.backends import DEFAULT_STACK, get_stack_class, stack_names, stack_options
from pytest_cutover.rehearsal.suite import operator_dir, stages_until, suite_args
from pytest_cutover.stages import PASSED, ROLLBACK, STAGES, SUCCESS

__all__ = ["rehearse"]


def _list_faults(verbose: bool) -> int:
    from pytest_cutover.rehearsal.faults import list_faults

    for fault in list_faults():
        click.echo(f"{fault.name}\t{fault.stage}\t{fault.when}\t{fault.description}" if verbose else fault.name)
    return 0


def _serve_until_signal(stack: Any) -> None:
    """Keep the stack up until SIGINT/SIGTERM, then stop it with further signals ignored (no orphans)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.5):
            pass
        stack.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _sign(report_path: Path, key: Path | None, run_dir: Path) -> str:
    """Sign the report; a rehearsal without a key gets a throwaway one whose public half stays beside it."""
    import tempfile

    from pytest_cutover.report.sign import keygen, sign_report

    if key is None:
        with tempfile.TemporaryDirectory(prefix="cutover-rehearsal-key-") as tmp:
            private, public, _ = keygen(Path(tmp) / "rehearsal.key")
            sig = sign_report(report_path, private, signer="rehearsal")
            (run_dir / "rehearsal-signing-key.pub").write_bytes(public.read_bytes())
    else:
        sig = sign_report(report_path, key)
    return (f"signed {report_path.name} with key {sig['public_key_fingerprint']}; check it with "
            f"`cutover report verify {report_path}`")


@click.command()
@click.option("--run", "run", default=None, metavar="ID", help="Run id (default: rehearsal-<UTC time>).")
@click.option("--fault", "faults", multiple=True, metavar="NAME", help="Plant a fault (repeatable).")
@click.option("--list-faults", is_flag=True, help="Print the fault catalog, one name a line, and exit.")
@click.option("-v", "--verbose", is_flag=True, help="With --list-faults: also the stage, moment and description.")
@click.option("--auto-rollback", is_flag=True, help="Roll back automatically when a trigger fires.")
@click.option("--keep", is_flag=True, help="Keep the stack's folder after the run.")
@click.option("--serve", is_flag=True, help="Keep the stack up after the run (Ctrl-C to stop); writes "
                   "reports/.secrets/<run>/stack.env (removed when it stops).")
@click.option("--reports-dir", type=click.Path(path_type=Path), default=None,
              help="Folder holding <run>/ (default: $CUTOVER_REPORTS_DIR, else ./reports).")
@click.option("--size", default="small", show_default=True, help="Seed size: small or large.")
@click.option("--monitor-window", type=float, default=8.0, show_default=True, help="Monitor window, seconds.")
@click.option("--suite", type=click.Path(path_type=Path), default=None,
              help="An operator folder with your own staged tests; they join the packaged suite (default: empty).")
@click.option("--until", type=click.Choice(STAGES), default=None,
              help="Run the stages up to and including this one (the later ones are not run).")
@click.option("--matrix", is_flag=True,
              help="Run one rehearsal per fault (all, or those given with --fault), each up to the stage that "
                   "guards it, and print fault -> stage -> message.")
@click.option("--stack", "stack_name", type=click.Choice(stack_names()), default=DEFAULT_STACK, show_default=True,
              help="Which stack to build: embedded (no Docker) or containers (testcontainers; needs Docker).")
@click.option("--images", "images", type=click.Choice(["official", "local"]), default="official", show_default=True,
              help="With --stack containers: the official images (pulled when absent; the local set, with a notice, "
                   "when a pull fails) or the local set built by --build-images.")
@click.option("--build-images", is_flag=True,
              help="Build the containers stack's local image set from the project's files (skipped when up to "
                   "date; needs root and Docker) and exit.")
@click.option("--pytest-arg", "pytest_args", multiple=True, help="Extra argument for pytest (repeatable).")
@click.option("--sign-key", type=click.Path(path_type=Path), default=None,
              help="Ed25519 key to sign the report with (default: a throwaway key for this rehearsal; its public "
                   "key is written beside the report).")
def rehearse(run: str | None, faults: tuple[str, ...], list_faults: bool, verbose: bool, auto_rollback: bool,
             keep: bool, serve: bool, reports_dir: Path | None, size: str, monitor_window: float,
             suite: Path | None, pytest_args: tuple[str, ...], sign_key: Path | None, until: str | None,
             matrix: bool, stack_name: str = DEFAULT_STACK, images: str = "official",
             build_images: bool = False) -> int:
    """Build the embedded stack and run precutover → sync → switch → smoke → rls → monitor against it."""
    if list_faults:
        return _list_faults(verbose)
    if build_images:
        from pytest_cutover.rehearsal.images import build_local_images

        build_local_images(echo=click.echo)
        return 0
    if matrix:
        from pytest_cutover.rehearsal.matrix import run_matrix

        return run_matrix(faults, reports_dir=reports_dir, monitor_window=monitor_window, echo=click.echo,
                          stack=stack_name, images=images)
    import pytest

    from pytest_cutover.notify.receiver import WebhookReceiver, rehearsal_notify_config
    from pytest_cutover.rehearsal.faults import validate_faults
    from pytest_cutover.rehearsal.hooks import RehearsalHooks
    from pytest_cutover.status import stage_rows

    validate_faults(faults)
    run = run or "rehearsal-" + dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    reports = (reports_dir or Path(os.environ.get("CUTOVER_REPORTS_DIR") or "reports")).resolve()
    run_dir = reports / run

    def say(line: str) -> None:
        click.echo(line)

    say(f"rehearsal {run}: building the {stack_name} stack" + (f" with faults {', '.join(faults)}" if faults else ""))
    options = stack_options(stack_name, images, say)
    stack = get_stack_class(stack_name)(None, size=size, faults=faults, keep=keep, run_id=run,
                                        monitor_window_s=monitor_window,
                                        monitor_interval_s=max(0.5, monitor_window / 8), **options)
    # A real webhook receiver on loopback: the suite's notifications go to it like to Slack on the night.
    with WebhookReceiver() as receiver, stack:
        stack.extra_config = rehearsal_notify_config(receiver)
        stack.write_config()
        say(f"stack up in {stack.startup_s:.1f}s: {stack.describe()}")
        for name, evidence in stack.planted.items():
            say(f"  ~ fault planted: {name}: {evidence}")
        os.environ.update(stack.environ())
        run_dir.mkdir(parents=True, exist_ok=True)
        _record_environment(stack, reports, run)
        # Day 7, the app live: the pre-sync, so that the sync stage runs a delta final sync; then the faults
        # that change the source after it.
        from pytest_cutover.rehearsal.presync import run_presync

        run_presync(stack.config_path, run, reports, say)
        for name, evidence in stack.plant_due("after-presync").items():
            say(f"  ~ fault planted: {name}: {evidence}")
        # In-process: modules this command already imported cannot be assertion-rewritten; that is fine.
        workdir = operator_dir(suite, stack.workdir / "operator")
        args = suite_args(workdir, stack.config_path, run=run, reports_dir=reports, stages=stages_until(until),
                          auto_rollback=auto_rollback, extra=pytest_args)
        hooks = RehearsalHooks(stack, say, monitor_window)
        exit_code = pytest.main(args, plugins=[hooks])
        say(f"pytest exited {int(exit_code)}")
        received = [f"{b.path.lstrip('/')}:{b.json.get('event', '?') if b.path != '/incident' else 'rollback'}"
                    for b in receiver.bodies()]
        say(f"notifications received: {', '.join(received) or 'none'}")
        if serve:
            from pytest_cutover.actions.env_switch import secrets_folder

            env_path = stack.write_stack_env(secrets_folder(reports, run) / "stack.env")
            say(f"serving the rehearsed stack; connection settings in {env_path} (mode 0600). Ctrl-C stops it.")
            _serve_until_signal(stack)
    report_path = run_dir / "report.json"
    status = json.loads(report_path.read_text())["status"] if report_path.exists() else "INCOMPLETE"
    if report_path.exists():
        say(_sign(report_path, sign_key, run_dir))
    from pytest_cutover.ledger import Ledger

    rows = stage_rows(Ledger.for_run(reports, run).stage_records())
    for row in rows:
        say(f"  {row['stage']:<11} {row['verdict']:<11} {row['reason'] or ''}")
    say(f"rehearsal {run}: {status}  (report: {report_path if report_path.exists() else 'not written'})")
    return rehearsal_exit(status, rows, until)


def _record_environment(stack: Any, reports: Path, run: str) -> None:
    """What the stack runs on (image set; Qdrant local mode where there is no server) for the report's
    environment block: a ``versions`` figures record in the run's ledger."""
    from pytest_cutover.ledger import Ledger

    figures = stack.environment_figures()
    if figures:
        Ledger.for_run(reports, run).append({"kind": "figures", "section": "versions", "figures": figures})


def rehearsal_exit(status: str, rows: list[dict[str, Any]], until: str | None) -> int:
    """0 on SUCCESS, or with ``--until STAGE`` when every stage up to it passed and nothing rolled back; else 1."""
    if until is None or status == ROLLBACK:
        return 0 if status == SUCCESS else 1
    wanted = stages_until(until)
    return 0 if all(row["verdict"] == PASSED for row in rows if row["stage"] in wanted) else 1
