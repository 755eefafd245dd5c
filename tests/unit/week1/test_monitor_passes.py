"""``pytest -m monitor`` run again and again in one run (cron or a loop): the gate lets every pass run,
each pass lands in the ledger, and status/report read the rolling history.  Then ``pytest -m week1``.

The inner runs use the real packaged acceptance modules (pytest_cutover/suite/test_monitor.py and
test_week1.py, copied beside a stand-in for the earlier stages) against the monitor tests' loopback
fake app, with a short window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cutover.ledger import Ledger
from pytest_cutover.report.build import build_report
from pytest_cutover.stages import STAGES
from pytest_cutover.suite import SUITE_DIR as SUITE
from pytest_cutover.week1.history import rolling_window

from ..monitor.fakeapp import TOKEN, ServedApp, serve_fake_app

RUN = "prod-2026-11-26"
EARLIER_STAGES = '''
import pytest

@pytest.mark.precutover
def test_pre(): pass

@pytest.mark.sync
def test_sync(): pass

@pytest.mark.switch
def test_switch(): pass

@pytest.mark.smoke
def test_smoke(): pass

@pytest.mark.rls
def test_rls(): pass
'''


@pytest.fixture
def fake_app(tmp_path: Path) -> Iterator[ServedApp]:
    with serve_fake_app(tmp_path) as served:
        yield served


@pytest.fixture
def suite(pytester: pytest.Pytester, fake_app: ServedApp, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("CUTOVER_RUN", raising=False)
    monkeypatch.delenv("CUTOVER_REPORTS_DIR", raising=False)
    monkeypatch.setenv("TEST_TOKEN", TOKEN)
    pytester.makepyfile(test_monitor=(SUITE / "test_monitor.py").read_text(),
                        test_week1=(SUITE / "test_week1.py").read_text(), test_earlier=EARLIER_STAGES)
    (pytester.path / "cutover.toml").write_text(f'''
[app]
api_base = "{fake_app.url}"
health_url = "{fake_app.url}/health"
test_token = "${{TEST_TOKEN}}"
log_file = "{fake_app.app.log_file}"
[thresholds]
monitor_window_s = 0.6
monitor_interval_s = 0.15
search_p95_ms = 5000  # this test is about passes landing in the ledger, not latency on 2 busy cores
[monitor]
orgs = ["org_0001", "org_0002"]
attachments = {{org_0001 = 5}}
search_dim = 4
rss_command = "echo 1048576"
critical_probes = ["threads"]
[waivers]
"app.maintenance" = "the fake app has no maintenance switch"
''')
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-p", "no:benchmark", f"--cutover-run={RUN}",
                              "--cutover-config=cutover.toml", "-rs", *args)


def test_two_monitor_passes_in_one_run_both_land_in_the_ledger(suite: pytest.Pytester) -> None:
    # the rehearsal's -m expression (the six stages) never selects the Week-1 tests
    first = _run(suite, "-m", " or ".join(STAGES))
    first.assert_outcomes(passed=17, skipped=1)  # 5 earlier + 12 monitor; maintenance off: no app.maintenance
    second = _run(suite, "-m", "monitor")
    second.assert_outcomes(passed=12, skipped=1)  # not blocked: every earlier stage passed in this run
    records = Ledger.for_run(suite.path / "reports", RUN).records()
    monitor_stages = [r for r in records if r["kind"] == "stage" and r["stage"] == "monitor"]
    assert [r["verdict"] for r in monitor_stages] == ["passed", "passed"]
    passes = [r for r in records if r["kind"] == "monitor-window"]
    assert [p["window"] for p in passes] == [1, 2]
    assert all(p["ok"] and p["samples"] >= 3 and p["probe_requests"] > 0 for p in passes), passes
    assert passes[0]["end"] < passes[1]["start"]
    rolling = rolling_window(records)
    assert rolling.passes == 2
    assert rolling.probe_requests == sum(p["probe_requests"] for p in passes)
    assert rolling.search_n == sum(len(p["search_ms"]) for p in passes)
    # the report the second pass wrote at its end reads both passes
    report = json.loads((suite.path / "reports" / RUN / "report.json").read_text())
    assert report["status"] == "SUCCESS", report["status_reason"]
    assert report["week1"]["rolling"]["passes"] == 2
    assert [m["window"] for m in report["monitor"]] == [1, 2]

    week1 = _run(suite, "-m", "week1")
    week1.assert_outcomes(passed=2, skipped=3)  # 24 h and BLOBs pending; no [source] for the live check
    out = week1.stdout.str()
    assert "pending: 0.0 h of 24 h after the switch at " in out
    assert "pending: no BLOB migration recorded in this run" in out
    assert "missing config keys source.database_url, source.qdrant_url (or source.qdrant_path) in " in out
    assert len(Ledger.for_run(suite.path / "reports", RUN).records()) == len(records)  # not a stage: no record
    rebuilt = build_report(Ledger.for_run(suite.path / "reports", RUN), None, RUN, local_versions=False)
    assert {c["name"]: c["verdict"] for c in rebuilt["week1"]["checks"]} == {
        "monitoring-24h": "pending", "no-critical-issues": "passed", "error-rate": "passed",
        "blob-migration": "pending", "decommission-ready": "pending"}
