"""COPY and batch transactions never go through the transaction pooler (pure checks)."""

from __future__ import annotations

import pytest

from pytest_cutover.migrate.errors import TargetError
from pytest_cutover.migrate.sink import connect_target, refuse_pooler


def test_port_6543_is_refused_and_the_password_is_not_shown():
    with pytest.raises(TargetError) as err:
        refuse_pooler("postgresql://postgres.ref:s3cretpw@aws-0.pooler.supabase.com:6543/postgres")
    assert str(err.value) == (
        "refusing to migrate through the transaction pooler (port 6543): "
        "postgresql://postgres.ref:***@aws-0.pooler.supabase.com:6543/postgres (hint: set target.database_url to the "
        "direct (db.<ref>.supabase.co:5432) or session pooler (:5432) connection; COPY and long transactions break "
        "on 6543)")
    assert "s3cretpw" not in repr(err.value)


def test_the_apps_pooler_url_is_refused_whatever_its_port():
    dsn = "postgresql://app:pw@127.0.0.1:6432/postgres"
    with pytest.raises(TargetError, match=r"transaction pooler \(target.app_database_url\)"):
        refuse_pooler(dsn, app_database_url=dsn)
    refuse_pooler("postgresql://postgres:pw@127.0.0.1:5432/postgres", app_database_url=dsn)  # direct: fine


@pytest.mark.asyncio
async def test_connect_refuses_before_any_network_io():
    # 192.0.2.1 (TEST-NET-1) would hang until the timeout: refusing first is what makes this test instant
    with pytest.raises(TargetError, match="port 6543"):
        await connect_target("postgresql://u:p@192.0.2.1:6543/db", timeout=0.1)
