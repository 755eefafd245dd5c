"""Load ``cutover.toml`` once into frozen, validated models.

Discovery: ``--cutover-config PATH`` > ``./cutover.toml`` > ``[tool.cutover]`` in
``./pyproject.toml``.  ``${VAR}`` is interpolated from the environment; unset variables
are one error naming every one of them and the keys that need them.  Every URL key is parsed
once, here: one that does not parse is an error naming the key and what is wrong (never its
value); an empty secret is an error naming the key.  Unknown keys fail and list
the known ones.  Every secret-bearing field is a :class:`~pytest_cutover.redact.Secret`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_cutover.errors import ConfigError
from pytest_cutover.redact import Secret, redact, reveal

__all__ = [
    "AppConfig",
    "Attestation",
    "BackupConfig",
    "Contact",
    "CutoverConfig",
    "MigrateConfig",
    "MonitorConfig",
    "PeopleConfig",
    "RlsConfig",
    "RunConfig",
    "SchemaConfig",
    "SourceConfig",
    "TargetConfig",
    "Thresholds",
    "Week1Config",
    "config_hash",
    "config_hosts",
    "config_setting",
    "discover_config",
    "dsn_notices",
    "load_config",
    "lookup",
    "parse_config",
    "resolve_settings",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunConfig(_Section):
    id: str | None = None
    lead: str | None = None
    timezone: str | None = None
    notes: str | None = None
    maintenance_start: str | None = Field(None, description="announced maintenance window start (free text or "
                                                            "ISO time), used in notifications")
    maintenance_end: str | None = Field(None, description="announced maintenance window end")
    window_start: str | None = Field(None, description="when the maintenance window opens (ISO time); "
                                                       "`cutover plan` budgets the night against it")
    window_minutes: float | None = Field(None, gt=0, description="how long the maintenance window is, in "
                                                                 "minutes; `cutover plan` fails when the "
                                                                 "estimate does not fit")
    window_margin: float = Field(0.25, ge=0, description="`cutover plan`'s safety margin: every estimated step "
                                                         "is multiplied by 1 + this (gaps, a slower night)")
    window_change_fraction: float = Field(0.02, ge=0, le=1, description="share of points `cutover plan` expects "
                                                                        "to change between the pre-sync and the "
                                                                        "night until a delta has measured it")


class SourceConfig(_Section):
    database_url: Secret | None = None
    qdrant_url: str | None = None
    qdrant_path: str | None = None
    qdrant_api_key: Secret | None = None
    collection: str = "dac_memory"


class TargetConfig(_Section):
    database_url: Secret | None = Field(None, description="direct or session connection: admin checks, migration")
    app_database_url: Secret | None = Field(None, description="what the app's DATABASE_URL becomes: the 6543 pooler")
    session_pooler_url: Secret | None = None
    storage_url: str | None = None
    storage_key: Secret | None = None
    bucket: str = "attachments"
    ca_file: str | None = None
    jwt_secret: Secret | None = Field(None, description="the project's JWT secret: the rls stage mints one user JWT "
                                                        "per org to prove storage isolation (Supabase: JWT settings)")


class AppConfig(_Section):
    source_dir: str | None = None
    env_file: str | None = None
    health_url: str | None = None
    api_base: str | None = None
    restart_command: str | None = None
    stop_command: str | None = None
    start_command: str | None = None
    log_file: str | None = None
    log_command: str | None = None
    maintenance: Literal["env", "endpoint", "file"] | None = None
    maintenance_file: str | None = None
    admin_token: Secret | None = None
    test_token: Secret | None = None
    python: str | None = None
    ca_file: str | None = None
    db_role: str | None = Field(None, description="the app's database role, to watch its connections drain "
                                                  "(default: the user in its DATABASE_URL)")
    db_application_name: str | None = Field(None, description="the app's application_name in pg_stat_activity")
    rollback_plan: str | None = Field(None, description="the rollback plan document (relative to the config file, "
                                                        "like env_file); committed in its git checkout")


class SchemaConfig(_Section):
    """Names from the runbook; every one can be changed."""

    tenant_column: str = "org_id"
    tenant_tables: tuple[str, ...] = ()
    fragments_table: str = "memory_fragments"
    fragment_key: str = "id"
    vector_id_column: str = "vector_id"
    embedding_column: str = "embedding"
    attachments_table: str = "attachments"
    attachment_key: str = "id"
    blob_column: str = "file_data"
    storage_path_column: str = "storage_path"
    storage_bucket_column: str = "storage_bucket"
    threads_table: str = "threads"
    rls_org_setting: str = "app.current_org_id"
    rls_user_setting: str = "app.current_user_id"
    tenant_schemas: tuple[str, ...] = Field(("public",), description="schemas searched for tables with the tenant "
                                                                      "column (RLS audit and isolation probes)")
    user_column: str = "user_id"
    tier_column: str | None = Field("tier", description="fragments' visibility tier column; none: no private tier")
    private_tier: str = "private"
    parity_tables: tuple[str, ...] = ("orgs", "users", "threads", "messages", "memory_fragments", "attachments")


class RlsConfig(_Section):
    """``[rls]``: what the exposed-surface audit (checks/surface.py) takes as intended."""

    public: dict[str, str] = Field({}, description="objects readable by everyone on purpose: schema.name (or "
                                                   "schema.function) -> the reason; listed in the report")
    tenant_columns: tuple[str, ...] = Field((), description="other names of the tenant column (besides "
                                                            "schema.tenant_column), e.g. organization_id")
    trusted_functions: tuple[str, ...] = Field((), description="membership helpers a policy may call on the tenant "
                                                               "column to bind it, e.g. private.is_member")
    api_roles: tuple[str, ...] = Field(("anon", "authenticated"), description="the API roles audited besides the "
                                                                              "app role")
    accepted: dict[str, str] = Field({}, description="findings taken on purpose: the finding's object as printed "
                                                     "(e.g. 'public.accounts policy owners insert') -> the reason")


class Thresholds(_Section):
    """The runbook's numbers, as defaults."""

    migration_success: float = Field(1.0, ge=0.95, le=1.0, description="runbook floor 95%; default 100%")
    search_p95_ms: float = 100.0
    error_rate: float = 0.01
    rollback_error_rate: float = 0.05
    recall_at_10: float = 0.95
    monitor_window_s: float = 1800.0
    monitor_interval_s: float = 10.0
    backup_max_age_hours: float = 24.0
    tls_min_days: int = 14
    health_timeout_s: float = 120.0
    drain_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    maintenance_verify_s: float = Field(15.0, gt=0, description="how long /health may take to confirm an endpoint "
                                                                "or file maintenance change (env: health_timeout_s)")


class MonitorConfig(_Section):
    """The monitor stage: what to probe, where to read figures, and its own limits (runbook steps 6-7)."""

    orgs: tuple[str, ...] = Field((), description="sampled orgs; empty: discover sample_orgs from the target")
    sample_orgs: int = Field(3, ge=1)
    probes: tuple[Literal["health", "threads", "search", "attachment"], ...] = (
        "health", "threads", "search", "attachment")
    critical_probes: tuple[str, ...] = Field(("health", "threads"), description="probe kinds or names")
    critical_failures: int = Field(3, ge=1, description="a critical probe failing this many times in a row")
    search_fragments: dict[str, int] = Field({}, description="org -> fragment id to search by")
    attachments: dict[str, int] = Field({}, description="org -> attachment id to download")
    search_dim: int = 1536
    search_k: int = 10
    probe_timeout_s: float = Field(5.0, gt=0)
    allow_maintenance: bool = Field(True, description="health 503 {'status': 'maintenance'} counts as up")
    app_pid: int | None = None
    app_pid_file: str | None = None
    rss_command: str | None = Field(None, description="prints the app's RSS (bytes, or with a kB/MB/GB unit)")
    pooler_admin_url: Secret | None = Field(None, description="PgBouncer admin console (database pgbouncer)")
    command_timeout_s: float = Field(10.0, gt=0)
    conn_failure_count: int = Field(3, ge=1, description="db connection failures within the window that trigger")
    conn_failure_window_s: float = Field(300.0, gt=0)
    error_rate_span_s: float | None = Field(300.0, description="sliding span of the error-rate trigger; none: all")
    min_requests: int = Field(20, ge=1, description="fewer requests in a span never fire the error-rate trigger")
    memory_slope_mb_per_min: float = Field(10.0, description="success: RSS grows slower than this")
    memory_growth_floor_mb: float = Field(32.0, ge=0, description="growth below this over the whole window is "
                                                                   "warm-up noise, whatever its slope")
    connection_growth_max: int = Field(10, ge=0, description="success: connections grow by at most this many")
    stop_on_trigger: bool = True


class Week1Config(_Section):
    """Runbook "Post-Cutover (Week 1)": how the checks judge the monitor passes recorded after the switch."""

    coverage_hours: float = Field(24.0, gt=0, description="monitoring must cover this long after the switch")
    max_gap_minutes: float = Field(15.0, gt=0, description="longest allowed gap between monitored stretches "
                                                           "(the runbook's every-15-minutes watch: interval + slack)")
    error_rate_max: float | None = Field(None, gt=0, le=1, description="error rate over the week must stay below "
                                                                       "this; none: [thresholds] error_rate")
    decommission_after_days: float = Field(7.0, gt=0, description="days of passing monitor windows before the "
                                                                   "old database and Qdrant may be decommissioned")


class MigrateConfig(_Section):
    """The migration engine's knobs (``cutover migrate``); defaults measured on 2 cores."""

    batch_size: int = Field(2000, ge=1, description="points per scroll page = per COPY batch = per commit")
    queue_depth: int = Field(3, ge=1, description="pages read ahead of the writer (bounds memory)")
    reader: Literal["process", "thread"] = "process"
    state_schema: str = Field("cutover", description="schema for the checkpoint tables (public if not creatable)")
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    hnsw_workers: int = Field(1, ge=0, description="max_parallel_maintenance_workers for the index build")
    maintenance_work_mem: str = "512MB"
    ef_search: int = 100
    search_samples_per_org: int = 5
    search_k: int = 10
    verify_source: bool = False
    presync_required: bool = Field(False, description="the night's window depends on the Day-7 pre-sync: the "
                                   "precutover stage fails without a passing, fresh one (false: it notes it, and "
                                   "the final sync copies everything)")
    presync_max_age_h: float = Field(36.0, gt=0, description="a pre-sync older than this many hours is stale: "
                                     "more has changed since than its delta was planned for")
    blob_path_template: str = "{org_id}/{thread_id}/{attachment_id}/{filename}"
    parity_exclude: tuple[str, ...] = Field(("attachments.storage_path", "attachments.storage_bucket",
                                             "memory_fragments.embedding"),
                                            description="table.column pairs left out of parity checksums")


class BackupConfig(_Section):
    path: str | None = None
    command: str | None = None


class Attestation(_Section):
    """A team item that only a person can confirm: who said so, and when."""

    who: str
    when: str
    note: str | None = None


class NotifyChannel(_Section):
    """One notification channel (``[notify.NAME]``): where a cutover moment is told, and to whom."""

    kind: Literal["webhook", "slack", "command"]
    url: Secret | None = Field(None, description="webhook or Slack incoming-webhook URL (a secret: it carries a token)")
    command: str | None = Field(None, description="argv (shlex) of a mail/pager CLI; the message arrives on stdin")
    events: tuple[Literal["maintenance-enabled", "maintenance-disabled", "rollback"], ...] = Field(
        ("maintenance-enabled", "maintenance-disabled", "rollback"),
        description="the report contract's notification events this channel is told about")
    required: bool = Field(False, description="a failed delivery fails the announcing stage instead of warning")
    timeout_s: float = Field(10.0, gt=0)
    retries: int = Field(3, ge=1, description="attempts on connect errors and HTTP 5xx (webhook, slack)")
    template: str | None = Field(None, description="jinja2 text replacing the built-in message")

    @model_validator(mode="after")
    def _check(self) -> NotifyChannel:
        if self.kind in ("webhook", "slack") and self.url is None:
            raise ValueError(f"a {self.kind} channel needs url")
        if self.url is not None:  # a webhook's token is its path, which Secret does not mask: mask the whole URL
            from pytest_cutover.redact import register_secret

            register_secret(self.url.get(), fragments=False)
        if self.kind == "command" and not (self.command or "").strip():
            raise ValueError("a command channel needs command")
        return self


class Contact(_Section):
    """One person the runbook's "Team Communication" and "Support contacts" rely on, and how to reach them.

    ``channel`` is ``scheme:address`` (``slack:#incident``, ``phone:+4930...``, ``mail:dana@example.com``);
    name and channel may be left empty in a draft: the precutover stage then fails naming what is missing.
    """

    name: str = ""
    role: Literal["escalation", "on-call", "support"]
    channel: str = ""
    from_: str | None = Field(None, alias="from", description="on duty from (ISO date/time); none: whole cutover")
    until: str | None = Field(None, description="on duty until (ISO date/time); none: whole cutover")
    note: str | None = None


class PeopleConfig(_Section):
    """``[[people.contacts]]``: escalation contacts, the on-call roster and the support standby."""

    contacts: tuple[Contact, ...] = ()


class CutoverConfig(_Section):
    run: RunConfig = RunConfig()
    source: SourceConfig = SourceConfig()
    target: TargetConfig = TargetConfig()
    app: AppConfig = AppConfig()
    schema_: SchemaConfig = Field(SchemaConfig(), alias="schema")
    rls: RlsConfig = RlsConfig()
    thresholds: Thresholds = Thresholds()
    backup: BackupConfig = BackupConfig()
    migrate: MigrateConfig = MigrateConfig()
    monitor: MonitorConfig = MonitorConfig()
    week1: Week1Config = Week1Config()
    team: dict[str, Attestation] = {}
    waivers: dict[str, str] = {}
    notify: dict[str, NotifyChannel] = {}
    people: PeopleConfig = PeopleConfig()
    path: str | None = Field(None, description="where this config was read from (set by the loader)")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def lookup(config: CutoverConfig | None, dotted: str) -> Any:
    """The value at ``section.key``, or ``None`` when the config or the key is absent."""
    node: Any = config
    for part in dotted.split("."):
        if node is None:
            return None
        attr = "schema_" if part == "schema" else part
        node = node.get(attr) if isinstance(node, Mapping) else getattr(node, attr, None)
    return node


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


def _first_set(config: CutoverConfig, keys: tuple[str, ...]) -> Any:
    return _frozen(next((v for v in (lookup(config, k) for k in keys) if v is not None), None))


def config_setting(*keys: str) -> Any:
    """A dataclass field resolved from the config: the first of ``keys`` (``section.name``) that is set.

    Its default is the config model's own default, so a settings dataclass (the monitor's, Week 1's)
    never declares a default a second time; :func:`resolve_settings` fills it from a config.
    """
    return field(default=_first_set(CutoverConfig(), keys), metadata={"config": keys})


_Settings = TypeVar("_Settings")


def resolve_settings(cls: type[_Settings], config: CutoverConfig | None) -> _Settings:
    """An instance of the settings dataclass ``cls`` whose :func:`config_setting` fields come from ``config``
    (its defaults when ``config`` is ``None``)."""
    if config is None:
        return cls()
    return cls(**{f.name: _first_set(config, f.metadata["config"])
                  for f in fields(cls) if "config" in f.metadata})


@dataclass
class _Interpolation:
    """What ``${VAR}`` interpolation found: unset variables (all of them, for one message) and, per key,
    the variables its value came from (so that an error about the value can name them)."""

    missing: dict[str, list[str]] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)


def _interpolate(value: Any, env: Mapping[str, str], where: str, found: _Interpolation) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            found.sources.setdefault(where, []).append(name)
            if name not in env:
                found.missing.setdefault(name, []).append(where)
                return ""
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{where}.{k}" if where else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{where}[{i}]", found) for i, v in enumerate(value)]
    return value


def _missing_error(source: str, missing: Mapping[str, list[str]]) -> ConfigError:
    """One error listing every unset variable and the keys that need it (the example config needs nine)."""
    what = "; ".join(f"{name} (needed by {', '.join(keys)})" for name, keys in missing.items())
    noun = "variable is" if len(missing) == 1 else f"{len(missing)} variables are"
    exports = " ".join(f"{name}=..." for name in missing)
    return ConfigError(f"{source}: environment {noun} not set: {what}",
                       hint=f"export {exports} (or remove the references from the config)")


#: Keys holding a PostgreSQL URL, and keys holding an http(s) URL; ``notify.*.url`` is checked per channel.
PG_URL_KEYS = ("source.database_url", "target.database_url", "target.app_database_url",
               "target.session_pooler_url", "monitor.pooler_admin_url")
HTTP_URL_KEYS = ("source.qdrant_url", "target.storage_url", "app.health_url", "app.api_base")


def _url_keys(config: CutoverConfig) -> list[tuple[str, bool]]:
    keys = [(k, True) for k in PG_URL_KEYS] + [(k, False) for k in HTTP_URL_KEYS]
    return keys + [(f"notify.{name}.url", False) for name in config.notify]


def _secret_keys(model: BaseModel, prefix: str = "") -> list[tuple[str, Secret]]:
    """Every ``Secret`` in the config, with its dotted key."""
    out: list[tuple[str, Secret]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        key = f"{prefix}{'schema' if name == 'schema_' else name}"
        if isinstance(value, Secret):
            out.append((key, value))
        elif isinstance(value, BaseModel):
            out.extend(_secret_keys(value, f"{key}."))
        elif isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, BaseModel):
                    out.extend(_secret_keys(v, f"{key}.{k}."))
    return out


def _from_vars(key: str, found: _Interpolation) -> str:
    names = found.sources.get(key)
    return f" (its value comes from ${{{'}, ${'.join(names)}}})" if names else ""


def _check_values(config: CutoverConfig, source: str, found: _Interpolation) -> None:
    """Empty secrets and URLs that do not parse are one error naming every such key, never quoting a value."""
    from pytest_cutover.dsn import DsnProblem, check_url

    problems = [f"{key} is empty{_from_vars(key, found)}"
                for key, secret in _secret_keys(config) if not secret.get().strip()]
    for key, postgres in _url_keys(config):
        value = lookup(config, key)
        if value is None:
            continue
        try:
            check_url(value.get() if isinstance(value, Secret) else str(value), postgres=postgres)
        except DsnProblem as exc:
            problems.append(f"{key}: {exc}{_from_vars(key, found)}")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems),
                          hint="fix the values in the config or in the variables they come from; remove a key "
                               "this cutover does not need")


def dsn_notices(config: CutoverConfig | None) -> list[str]:
    """One line per database URL whose driver-ignored parameters our connections drop (``pgbouncer=true``)."""
    from pytest_cutover.dsn import dropped_params

    notices: list[str] = []
    for key in PG_URL_KEYS:
        value = lookup(config, key)
        dropped = dropped_params(value.get()) if isinstance(value, Secret) else []
        if dropped:
            notices.append(f"{key}: ignoring {', '.join(dropped)} for the suite's own connections (no PostgreSQL "
                           "driver accepts it); the app's URL is used as written")
    return notices


def _model_in(annotation: Any) -> tuple[Any, bool]:
    """The pydantic model inside ``annotation`` (``M``, ``M | None``, ``list[M]``, ``dict[str, M]``) and whether
    it sits in a container, so the next part of an error location is an index or key, not a field."""
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset, dict):
        models = [m for m, _ in map(_model_in, args) if m is not None]
        return (models[0] if models else None), True
    if len(args) == 1:  # Optional[...]
        return _model_in(args[0])
    return None, False


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names at ``loc`` inside ``model``, for the 'unknown key' message."""
    current: Any = model
    skip_index = False
    for part in loc[:-1]:
        if skip_index:  # a list index or a table name such as [team.<item>]
            skip_index = False
            continue
        fields = getattr(current, "model_fields", None)
        field = (fields or {}).get("schema_" if part == "schema" else part)
        if field is None:
            return []
        current, skip_index = _model_in(field.annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", {}) or {}
    return sorted((f.alias or n) for n, f in fields.items() if n != "path")


def _explain(exc: ValidationError, source: str) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        known = _known_keys(CutoverConfig, loc)
        return ConfigError(f"{source}: unknown key {key}", hint="known keys here: " + ", ".join(known))
    return ConfigError(f"{source}: {key}: {err['msg'].lower()} (got {type(err.get('input')).__name__})")


def parse_config(data: Mapping[str, Any], *, source: str = "config", env: Mapping[str, str] | None = None,
                 path: str | None = None) -> CutoverConfig:
    """Validate an already-parsed mapping (after ``${VAR}`` interpolation); ``source`` (the file) starts
    every error message."""
    found = _Interpolation()
    resolved = _interpolate(dict(data), os.environ if env is None else env, "", found)
    if found.missing:
        raise _missing_error(source, found.missing)
    if path is not None:
        resolved["path"] = path
    try:
        config = CutoverConfig.model_validate(resolved)
    except ValidationError as exc:
        raise _explain(exc, source) from None
    _check_values(config, source, found)
    return config


def discover_config(explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Path | None:
    """Where the config lives: the explicit path, ``./cutover.toml`` or ``./pyproject.toml`` with
    a ``[tool.cutover]`` table; ``None`` when there is none."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", hint="pass --cutover-config PATH to a cutover.toml")
        return path
    base = cwd or Path.cwd()
    candidate = base / "cutover.toml"
    if candidate.is_file():
        return candidate
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            return None
        if "cutover" in data.get("tool", {}):
            return pyproject
    return None


def load_config(path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> CutoverConfig | None:
    """Load and validate the config, or return ``None`` when no config exists at all."""
    found = discover_config(path, cwd)
    if found is None:
        return None
    try:
        data = tomllib.loads(found.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{found}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{found}: cannot read: {exc.strerror}") from None
    if found.name == "pyproject.toml":
        data = data.get("tool", {}).get("cutover", {})
    return parse_config(data, source=str(found), env=env, path=str(found.resolve()))


def config_hash(config: CutoverConfig | None) -> str | None:
    """A stable hash of the effective config; it identifies it without revealing any value."""
    if config is None:
        return None
    payload = config.model_dump(mode="python", by_alias=True, exclude={"path"})

    def plain(obj: Any) -> Any:
        if isinstance(obj, Secret):
            return hashlib.sha256(obj.get().encode()).hexdigest()
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [plain(v) for v in obj]
        return obj

    canonical = json.dumps(plain(payload), sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


# The endpoints the report and its recorded config show: what a reader needs to know where the night ran.
_HOST_KEYS = (
    "source.database_url", "source.qdrant_url", "target.database_url", "target.app_database_url",
    "target.session_pooler_url", "target.storage_url", "app.health_url", "app.api_base",
)


def config_hosts(config: CutoverConfig | None) -> dict[str, str]:
    """Every endpoint the config names, reduced to ``scheme://host:port/path`` (no user, password or query)."""
    hosts: dict[str, str] = {}
    for key in _HOST_KEYS:
        value = reveal(lookup(config, key))
        if not value:
            continue
        try:
            parts = urllib.parse.urlsplit(value)
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            hosts[key] = "(unparseable url)"
            continue
        if not parts.hostname:
            hosts[key] = redact(value)
            continue
        hosts[key] = redact(f"{parts.scheme}://{parts.hostname}{port}{parts.path}")
    return hosts
