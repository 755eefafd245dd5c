"""Redaction fuzz: hostile passwords in the config and the environment never reach any byte of output.

Passwords come from a hostile alphabet (every reserved URL character, quotes, backslash, %-sequences,
non-ASCII; short and long) from a seeded generator (``CUTOVER_FUZZ_SEED`` picks another seed).  A
passing and a failing staged test and an unstaged one run with live logging at DEBUG, a log file,
``-l``, ``--tb=long``, ``-rA`` and JUnit XML; the failing one goes through the suite's own connector
to a closed local port and also raises, logs, warns and prints every secret raw.  Then the terminal
output, every file of the reports folder, the log file and the JUnit XML are searched for every form
of every secret, computed here independently of the redactor: zero hits.
"""

from __future__ import annotations

import html
import json
import os
import random
import socket
from urllib.parse import quote, quote_plus

import pytest

from .conftest import CutoverPytester

RESERVED = ":/?#[]@!$&'()*+,;="
OTHER = "\"\\`<>{}|^~ "
PERCENT = ("%2F", "%zz", "%", "%%", "%41", "%E2%82", "%40")
NON_ASCII = "éßøΩж日本語🔑"
PLAIN = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MIN_FRAGMENT = 6
#: Any run of this many consecutive characters of a secret (or of its escaped forms) counts as a leak,
#: wherever it was cut (pytest's saferepr shortens long values to head...tail at any character).
WINDOW = 10


def hostile_password(rnd: random.Random, length: int) -> str:
    """A password that starts with a few plain characters (so that it is unique) and mixes in every kind
    of character that URL parsers, shells, JSON and repr treat specially."""
    out = [rnd.choice(PLAIN) for _ in range(4)]
    while len("".join(out)) < length:
        pool = rnd.choice((RESERVED, OTHER, NON_ASCII, PLAIN, PLAIN))
        out.append(rnd.choice(PERCENT) if rnd.random() < 0.1 else rnd.choice(pool))
    return "".join(out)


def forms(secret: str) -> set[str]:
    """Every way ``secret`` can show up in text, every piece of at least ``MIN_FRAGMENT`` characters that a
    parser splitting it at a reserved character could quote, and every ``WINDOW`` characters of it."""
    whole = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], repr(secret)[1:-1], html.escape(secret)}
    whole |= {f.lower() for f in whole if "%" in f}
    pieces: set[str] = set()
    splitters = set(RESERVED + OTHER + "%")
    for form in (secret, quote(secret, safe="")):
        cuts = [i for i, ch in enumerate(form) if ch in splitters]
        pieces |= {form[:c] for c in cuts} | {form[c + 1:] for c in cuts}
        pieces |= {form[a + 1:b] for a, b in zip([-1, *cuts], [*cuts, len(form)], strict=True)}
    windows = {form[i:i + WINDOW] for form in whole for i in range(len(form) - WINDOW + 1)}
    return {f for f in whole | pieces | windows if len(f) >= MIN_FRAGMENT}


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """
[source]
database_url = "postgresql://old_app:${OLD_PW}@127.0.0.1:${PORT}/old"
qdrant_api_key = "${QDRANT_KEY}"
[target]
database_url = "postgresql://postgres:${NEW_PW}@127.0.0.1:${PORT}/postgres"
app_database_url = "postgresql://app_user:${APP_PW}@127.0.0.1:${PORT}/postgres?pgbouncer=true"
storage_key = "${STORAGE_KEY}"
jwt_secret = "${JWT_SECRET}"
[app]
admin_token = "${ADMIN_TOKEN}"
[thresholds]
connect_timeout_s = 2
"""

SUITE = '''
import asyncio, logging, os, sys, warnings
import pytest
from pytest_cutover.checks.db import config_connection

log = logging.getLogger("cutover.fuzz")

def everything(cfg):
    return {k: v.get() for k, v in (("old", cfg.source.database_url), ("new", cfg.target.database_url),
            ("app", cfg.target.app_database_url), ("qdrant", cfg.source.qdrant_api_key),
            ("storage", cfg.target.storage_key), ("jwt", cfg.target.jwt_secret), ("admin", cfg.app.admin_token))}

@pytest.mark.precutover
def test_passing(cutover_config, record_figure):
    raw = everything(cutover_config)
    log.debug("debug: connecting with %s", raw)
    log.info("info: %r", sorted(raw.values()))
    record_figure("dsn", raw["app"])
    print("stdout:", raw)
    print("stderr:", list(raw.values()), file=sys.stderr)

@pytest.mark.sync
def test_failing(cutover_config):
    raw = everything(cutover_config)
    env = {k: v for k, v in os.environ.items() if k.isupper() and "_" in k}
    async def connect():
        async with config_connection(cutover_config, "target.app_database_url"):
            pass
    try:
        asyncio.run(connect())
    except Exception:
        log.exception("connector failed for %s", raw["app"])
    warnings.warn(f"warning with {raw['jwt']} and {raw['new']}")
    print("captured", raw, env)
    raise ValueError(f"invalid DSN {raw['new']!r} (password {raw['new'].split(':')[2]!r}) {raw!r}")

def test_unstaged_failure(cutover_config):
    secret = cutover_config.target.storage_key.get()
    long_text = "x" * 110 + secret + "y" * 110  # saferepr (-l, assertion text) cuts it inside the secret
    assert secret == long_text, f"unstaged {secret}"
'''


def _run_round(cutover_pytester: CutoverPytester, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rnd = random.Random(seed)
    names = ("OLD_PW", "NEW_PW", "APP_PW", "QDRANT_KEY", "STORAGE_KEY", "JWT_SECRET", "ADMIN_TOKEN")
    secrets = {name: hostile_password(rnd, rnd.choice((8, 12, 24, 64, 96))) for name in names}
    for name, value in secrets.items():
        # Passwords go into the URLs percent-encoded (a raw one is a config error, tested below).
        monkeypatch.setenv(name, quote(value, safe="") if name.endswith("_PW") else value)
    monkeypatch.setenv("PORT", str(closed_port()))
    pytester = cutover_pytester.pytester
    pytester.makefile(".toml", cutover=CONFIG)
    cutover_pytester.suite(SUITE)
    run = cutover_pytester.run("--log-cli-level=DEBUG", "--log-file=cutover.log", "--log-file-level=DEBUG",
                               "-l", "--tb=long", "-rA", "-v", "--junitxml=junit.xml", "-W", "always",
                               *os.environ.get("CUTOVER_FUZZ_ARGS", "").split(),
                               subprocess=True)
    assert run.verdicts() == {"precutover": "passed", "sync": "failed"}, run.output
    out = run.output
    assert "connection refused" in out, "the failing stage did not go through the connector"
    files = [p for p in pytester.path.rglob("*")
             if p.is_file() and p.suffix in (".log", ".xml", ".json", ".jsonl", ".html", ".txt", ".md", "")]
    assert {"cutover.log", "junit.xml", "ledger.jsonl"} <= {p.name for p in files}
    assert "connector failed" in (pytester.path / "cutover.log").read_text()
    blobs = {"terminal": out.encode(), **{str(p.relative_to(pytester.path)): p.read_bytes() for p in files}}
    leaks = [(name, where, form) for name, value in secrets.items() for form in forms(value)
             for where, blob in blobs.items() if form.encode() in blob]
    assert not leaks, f"seed {seed}: {len(leaks)} leaks, first: {leaks[:3]}"
    assert "ignoring pgbouncer" in out  # the notice for the app URL's Supabase parameter


SEEDS = [int(os.environ["CUTOVER_FUZZ_SEED"])] if os.environ.get("CUTOVER_FUZZ_SEED") else [20261126, 7]


@pytest.mark.parametrize("seed", SEEDS)
def test_hostile_secrets_never_reach_any_output(cutover_pytester: CutoverPytester,
                                                monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    _run_round(cutover_pytester, monkeypatch, seed)


@pytest.mark.parametrize("char", ["/", "#", "?", "@"])
def test_a_raw_reserved_character_stops_at_config_load_naming_the_key(cutover_pytester: CutoverPytester,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     char: str) -> None:
    password = f"Kq7{char}vRt{char}Zp9xWm"
    monkeypatch.setenv("NEW_PW", password)
    cutover_pytester.pytester.makefile(".toml", cutover='[target]\ndatabase_url = '
                                       '"postgresql://postgres:${NEW_PW}@127.0.0.1:5432/postgres"\n')
    cutover_pytester.suite(SUITE)
    run = cutover_pytester.run("--log-cli-level=DEBUG")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert "cutover.toml: target.database_url: the password contains" in run.output
    assert "(its value comes from ${NEW_PW})" in run.output
    for form in {*forms(password), "Kq7", "vRt", "Zp9xWm"}:
        assert form not in run.output


def test_with_capture_off_what_a_test_prints_is_redacted_too(cutover_pytester: CutoverPytester,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    password = hostile_password(random.Random(3), 24)
    monkeypatch.setenv("ADMIN_TOKEN", password)
    cutover_pytester.pytester.makefile(".toml", cutover='[app]\nadmin_token = "${ADMIN_TOKEN}"\n')
    cutover_pytester.suite('''
import sys, pytest

@pytest.mark.precutover
def test_prints(cutover_config):
    token = cutover_config.app.admin_token.get()
    print("stdout", token)
    print("stderr", repr(token), file=sys.stderr)
''')
    run = cutover_pytester.run("-s", subprocess=True)
    assert run.verdicts() == {"precutover": "passed"}
    assert "stdout ***" in run.output
    assert not [form for form in forms(password) if form in run.output]
