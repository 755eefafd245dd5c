"""The local image set: what goes into it, when it is rebuilt, and how the stack chooses between the sets."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from pytest_cutover.rehearsal import containers as c
from pytest_cutover.rehearsal import images
from pytest_cutover.rehearsal.errors import RehearsalError
from tests.unit.rehearsal_containers.test_containers_docker import GROUP as DOCKER_GROUP


def test_storage_image_carries_every_module_the_storage_service_imports() -> None:
    assert images.missing_storage_imports() == set()
    names = {d.metadata["Name"] for d in images.storage_distributions()}
    assert {"starlette", "uvicorn", "asyncpg", "PyJWT", "anyio"} <= names


def test_a_dependency_left_out_of_the_storage_image_is_named() -> None:
    """The guard that refuses a storage image whose service could not import (PyJWT is imported lazily)."""
    assert images.missing_storage_imports(("starlette", "uvicorn", "asyncpg")) == {"jwt"}


def test_inputs_hash_follows_the_recipe_and_the_base(monkeypatch: pytest.MonkeyPatch) -> None:
    first = images._inputs("pgbouncer", "base-1")
    assert images._inputs("pgbouncer", "base-1") == first
    assert images._inputs("pgbouncer", "base-2") != first  # a new base rebuilds everything on top of it
    monkeypatch.setattr(images, "PGBOUNCER_DOCKERFILE", images.PGBOUNCER_DOCKERFILE + "# changed\n")
    assert images._inputs("pgbouncer", "base-1") != first


def test_storage_inputs_follow_the_project_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A copy of the package hashes the same (names are relative); an edit to the storage service changes it."""
    real = images._inputs("storage", "b")
    for src in images._storage_sources():
        dest = tmp_path / src.relative_to(images.PKG_ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    monkeypatch.setattr(images, "PKG_ROOT", tmp_path)
    assert images._inputs("storage", "b") == real
    server = tmp_path / "rehearsal" / "storage" / "server.py"
    server.write_text(server.read_text() + "\n# edited\n")
    assert images._inputs("storage", "b") != real


def test_base_image_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(RehearsalError, match="needs root") as caught:
        images._build_base(object(), "pytest-cutover/base:test", "x")
    assert ".ci/setup" in (caught.value.hint or "")


def test_local_set_has_no_qdrant_and_serves_storage_from_the_project() -> None:
    local, official = c.local_images(), c.official_images()
    assert local.qdrant is None and official.qdrant == c.QDRANT_IMAGE
    assert set(local.images) == {"postgres", "pgbouncer", "storage", "app"}
    assert (local.app, official.app) == ("pytest-cutover/app:local", None)
    assert all(tag.startswith("pytest-cutover/") for tag in local.images.values())
    assert (local.storage, official.storage) == ("project", "supabase")
    assert "nan-vector" not in c.unsupported_faults("local") and "nan-vector" in c.unsupported_faults("official")
    assert "blob-corrupt" in c.unsupported_faults("local")


def test_unknown_image_set_is_refused() -> None:
    with pytest.raises(RehearsalError, match="unknown image set 'dockerhub'"):
        c.ContainerStack(None, images="dockerhub")


# ------------------------------------------------------------------------------------------------ with Docker
@pytest.fixture
def engine() -> None:
    reason = c.docker_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Docker not available: {reason}")


@pytest.mark.docker
@pytest.mark.xdist_group(DOCKER_GROUP)  # a build would start containers while the leak tests count them
def test_build_is_skipped_when_the_inputs_are_unchanged(engine: None) -> None:
    """`.ci/setup` built the set; building again only compares labels (the rehearsal never waits on a build)."""
    if not all(images.local_image_status().values()):
        pytest.fail("the local image set is not built: run `bash .ci/setup` (or `cutover rehearse --build-images`)")
    lines: list[str] = []
    results = images.build_local_images(echo=lines.append)
    assert [r.built for r in results] == [False] * len(images.LOCAL_IMAGES), lines
    assert all("up to date" in line for line in lines)


@pytest.mark.docker
@pytest.mark.xdist_group(DOCKER_GROUP)
def test_official_falls_back_to_local_with_a_notice_when_a_pull_fails(engine: None) -> None:
    said: list[str] = []
    chosen = c.resolve_images("official", said.append)
    if chosen.name == "official":  # a registry answered (or the images are here): nothing to fall back from
        assert said == []
    else:
        assert chosen == c.local_images()
        assert len(said) == 1 and "could not be pulled" in said[0] and "using the local image set" in said[0]


def test_the_image_a_rebuild_replaced_is_removed_only_when_nothing_holds_it() -> None:
    verdict = images.replaced_image_verdict
    assert verdict("sha256:old", "sha256:new", old_tags=[], users=[]) is None
    assert verdict(None, "sha256:new", old_tags=[], users=[]) == images.NOTHING_REPLACED
    assert verdict("sha256:same", "sha256:same", old_tags=[], users=[]) == images.NOTHING_REPLACED
    assert verdict("sha256:old", "sha256:new", old_tags=["mine:v1"], users=[]) == "still tagged mine:v1"
    assert verdict("sha256:old", "sha256:new", old_tags=[], users=["box"]) == "used by container(s) box"


@pytest.mark.docker
@pytest.mark.xdist_group(DOCKER_GROUP)
def test_a_rebuild_removes_the_image_it_replaced_unless_a_container_uses_it(engine: None, tmp_path: Path) -> None:
    """Two LABEL-only rebuilds on the local base (a second or two): the first replaced image is removed and
    said so; the second, which a container was created from, is kept and said why."""
    import docker
    import docker.errors

    tag = "pytest-cutover/prune-test:latest"
    client = docker.from_env(version="auto", timeout=60)

    built: list[str] = []

    def build(n: int) -> str:
        (tmp_path / "Dockerfile").write_text(f"FROM {images.LOCAL_IMAGES['base']}\nLABEL prune-test={n}\n")
        built.append(client.images.build(path=str(tmp_path), tag=tag, pull=False, network_mode="none", rm=True,
                                         labels={images.INPUTS_LABEL: str(n)})[0].id)
        return built[-1]

    box = None
    try:
        first = build(1)
        second = build(2)
        said: list[str] = []
        assert images.prune_replaced(client, [(tag, first)], said.append) == [first]
        assert said == [f"images: removed the image {first[7:19]} that {tag} replaced (untagged, no container "
                        "uses it)"]
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(first)
        box = client.containers.create(second, ["true"], name="cutover-prune-test")
        build(3)
        assert images.prune_replaced(client, [(tag, second)], said.append) == []
        assert said[-1] == f"images: kept the image {second[7:19]} that {tag} replaced (used by container(s) " \
                           "cutover-prune-test)"
        client.images.get(second)
    finally:
        if box is not None:
            box.remove(force=True)
        for ref in (tag, *built):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(ref, force=True)
        client.close()


def test_app_image_requirements_are_the_templates_minus_its_test_runner() -> None:
    from packaging.requirements import Requirement

    lines = (images.APP_TEMPLATE / "requirements.txt").read_text().split()
    template = {Requirement(line).name.lower() for line in lines} - {"pytest"}
    assert {Requirement(r).name.lower() for r in images.APP_REQUIREMENTS} == template


def test_app_image_carries_every_module_the_app_imports_and_the_extras_it_asks_for() -> None:
    assert images.missing_app_imports() == set()
    names = {d.metadata["Name"].lower() for d in images.distributions(images.APP_REQUIREMENTS, "app")}
    assert {"greenlet", "h2"} <= names  # sqlalchemy[asyncio], and qdrant-client's httpx[http2]
    plain = {d.metadata["Name"].lower() for d in images.distributions(["sqlalchemy"], "app")}
    assert "greenlet" not in plain


def test_a_dependency_left_out_of_the_app_image_is_named() -> None:
    roots = [r for r in images.APP_REQUIREMENTS if r != "pgvector"]
    assert images.missing_app_imports(roots) == {"pgvector"}


def test_app_inputs_follow_the_template(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = images._inputs("app", "b")
    copy = tmp_path / "app_template"
    shutil.copytree(images.APP_TEMPLATE, copy)
    monkeypatch.setattr(images, "APP_TEMPLATE", copy)
    assert images._inputs("app", "b") == real
    main = copy / "app" / "main.py"
    main.write_text(main.read_text() + "\n# edited\n")
    assert images._inputs("app", "b") != real


@pytest.mark.docker
@pytest.mark.xdist_group(DOCKER_GROUP)
def test_a_rebuilt_parent_goes_with_the_last_image_built_on_it(engine: None, tmp_path: Path) -> None:
    """As when the base is rebuilt: the old child is removed first, and the old parent goes with it."""
    import docker
    import docker.errors

    parent, child = "pytest-cutover/prune-test:parent", "pytest-cutover/prune-test:child"
    client = docker.from_env(version="auto", timeout=60)
    built: list[str] = []

    def build(tag: str, base: str, n: int) -> str:
        (tmp_path / "Dockerfile").write_text(f"FROM {base}\nLABEL prune-test={n}\n")
        built.append(client.images.build(path=str(tmp_path), tag=tag, pull=False, network_mode="none", rm=True,
                                         labels={images.INPUTS_LABEL: f"{tag}-{n}"})[0].id)
        return built[-1]

    try:
        old_parent = build(parent, images.LOCAL_IMAGES["base"], 1)
        old_child = build(child, parent, 1)
        build(parent, images.LOCAL_IMAGES["base"], 2)
        build(child, parent, 2)
        said: list[str] = []
        removed = images.prune_replaced(client, [(parent, old_parent), (child, old_child)], said.append)
        assert removed == [old_child, old_parent], said
        assert said[1] == f"images: the image {old_parent[7:19]} that {parent} replaced is gone too (removed with " \
                          "the last image built on it)"
        for gone in (old_parent, old_child):
            with pytest.raises(docker.errors.ImageNotFound):
                client.images.get(gone)
    finally:
        for ref in (child, parent, *reversed(built)):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(ref, force=True)
        client.close()


@pytest.mark.docker
@pytest.mark.xdist_group(DOCKER_GROUP)
def test_a_failed_build_leaves_no_untagged_image(engine: None, tmp_path: Path) -> None:
    import docker
    import docker.errors

    client = docker.from_env(version="auto", timeout=60)
    dangling = {i.id for i in client.images.list(filters={"dangling": True})}
    (tmp_path / "Dockerfile").write_text(f"FROM {images.LOCAL_IMAGES['base']}\nLABEL prune-test=failed\n"
                                         "RUN exit 3\n")
    try:
        with pytest.raises(docker.errors.BuildError) as failed:
            client.images.build(path=str(tmp_path), tag="pytest-cutover/prune-test:failed", pull=False,
                                network_mode="none", rm=True, forcerm=True)
        log = "".join(str(chunk.get("stream", "")) for chunk in failed.value.build_log)
        note = images.remove_failed_build(client, log)
        assert note is not None and note.startswith("images: removed the failed build's last image "), (note, log)
        assert {i.id for i in client.images.list(filters={"dangling": True})} == dangling
        client.images.get(images.LOCAL_IMAGES["base"])  # the FROM image is never touched
    finally:
        client.close()
