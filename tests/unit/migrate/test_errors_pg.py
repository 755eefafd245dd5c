"""Clear, redacted errors for what goes wrong before a migration can start."""

from __future__ import annotations

import socket

import pytest

from pytest_cutover.config import parse_config
from pytest_cutover.migrate import api
from pytest_cutover.migrate.errors import SourceError, TargetError

pytestmark = pytest.mark.integration


def _with(world, **sections):
    data = world.config_dict()
    for dotted, value in sections.items():
        section, key = dotted.split("__")
        data[section][key] = value
    return parse_config(data, env={})


def test_missing_collection_names_the_ones_that_exist(make_world):
    world = make_world(5)
    with pytest.raises(SourceError) as err:
        api.vectors(_with(world, source__collection="nope"), "e1")
    assert str(err.value) == (f"qdrant collection 'nope' does not exist at {world.qdrant_path} "
                              "(hint: collections there: dac_memory; set source.collection)")


def test_missing_target_column(make_world):
    world = make_world(5)
    data = world.config_dict()
    data["schema"] = {"embedding_column": "embedding_v2"}
    with pytest.raises(TargetError, match=r"target column memory_fragments.embedding_v2 does not exist"):
        api.vectors(parse_config(data, env={}), "e2")


def test_dimension_mismatch_between_collection_and_column(make_world, tmp_path):
    from qdrant_client import QdrantClient, models

    world = make_world(5)
    small = tmp_path / "q8"
    client = QdrantClient(path=str(small))
    client.create_collection("dac_memory", vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE))
    client.close()
    with pytest.raises(TargetError) as err:
        api.vectors(_with(world, source__qdrant_path=str(small)), "e3")
    assert str(err.value).startswith("dimension mismatch: qdrant collection has 8, target column "
                                     "memory_fragments.embedding is vector(1536)")


def test_wrong_credentials_are_named_without_the_password(make_world):
    world = make_world(5)
    bad = world.target_dsn.replace("postgres:", "postgres:x", 1) if "postgres:" in world.target_dsn else None
    assert bad
    with pytest.raises(TargetError) as err:
        api.vectors(_with(world, target__database_url=bad), "e4")
    assert "refused the credentials" in str(err.value)
    password = bad.split(":")[2].split("@")[0]
    assert password not in str(err.value)


def test_unreachable_target_times_out_with_a_hint(make_world):
    world = make_world(5)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TargetError) as err:
        api.vectors(_with(world, target__database_url=f"postgresql://postgres:pw@127.0.0.1:{port}/postgres"), "e5")
    assert f"target database postgresql://postgres:***@127.0.0.1:{port}/postgres is unreachable" in str(err.value)


def test_transaction_pooler_dsn_is_refused_before_connecting(make_world):
    world = make_world(5)
    with pytest.raises(TargetError, match=r"refusing to migrate through the transaction pooler \(port 6543\)"):
        api.vectors(_with(world, target__database_url="postgresql://postgres:pw@127.0.0.1:6543/postgres"), "e6")


def test_a_locked_local_folder_is_reported_by_the_reader_process(make_world):
    from qdrant_client import QdrantClient

    world = make_world(5)
    holder = QdrantClient(path=str(world.qdrant_path))  # the app still holds the folder: maintenance not on
    try:
        with pytest.raises(SourceError) as err:
            api.vectors(world.config(), "e7")
    finally:
        holder.close()
    assert str(err.value).startswith(f"cannot open qdrant at {world.qdrant_path}: ")
    assert "already accessed by another instance" in str(err.value)
