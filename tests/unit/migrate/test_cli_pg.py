"""``cutover migrate`` in-process: exit codes, JSON, and the ledger record."""

from __future__ import annotations

import json

import pytest

from pytest_cutover.cli import main
from pytest_cutover.ledger import Ledger


@pytest.mark.integration
def test_vectors_dry_run_prints_json_and_records_the_step(make_world, capsys, monkeypatch):
    world = make_world(60, missing=1)
    toml = world.write_toml()
    monkeypatch.chdir(world.root)
    code = main(["migrate", "vectors", "--config", str(toml), "--run", "cli-dry", "--dry-run", "--json",
                 "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # a missing row fails at the default 100% tolerance
    assert (out["figures"]["points"], out["figures"]["missing"], out["ok"]) == (59, 1, False)
    records = Ledger.for_run(world.root / "reports", "cli-dry").records()
    assert records[-1]["kind"] == "migration" and records[-1]["step"] == "vectors"
    assert records[-1]["figures"]["samples"]["missing"] == world.planted["missing"]
    # the step's own settings and the invocation's command line are both kept, under their own keys
    assert records[-1]["options"]["dry_run"] is True and "--dry-run" in records[-1]["args"]
    assert world.pg.target_dsn.get().split(":")[2].split("@")[0] not in json.dumps(records)


def test_missing_config_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["migrate", "parity"]) == 2
    assert "no cutover config found" in capsys.readouterr().err


def test_public_api_is_pinned():
    from pytest_cutover.migrate import api

    assert api.__all__ == sorted(api.__all__) == ["Outcome", "blob_schema", "blobs", "ledger_record", "parity",
                                                  "record_migration", "source_spec", "vector_job", "vector_schema",
                                                  "vectors"]


def test_progress_callback_reports_points_and_total(capsys):
    from pytest_cutover.migrate.cli import _progress

    with _progress(True, "vectors") as update:
        update(0, 10)
        update(10, 10)
    err = capsys.readouterr().err
    assert "10/10" in err and "points/s" in err and "ETA" in err


@pytest.mark.parametrize("step", ["vectors", "blobs"])
def test_presync_and_full_exclude_each_other(step, capsys):
    assert main(["migrate", step, "--presync", "--full"]) == 2
    assert "--presync and --full exclude each other" in capsys.readouterr().err
