"""The public names of the rehearsal-stack modules, pinned (a rename is a contract change)."""

from __future__ import annotations

import importlib

import pytest

EXPORTS = {
    "pytest_cutover.rehearsal.errors": ["RehearsalError"],
    "pytest_cutover.rehearsal.procs": ["ManagedProcess", "free_port", "port_is_free"],
    "pytest_cutover.rehearsal.tls": ["DEFAULT_HOSTS", "CertificateAuthority", "ServerCertificate",
                                     "issue_server_cert", "make_ca"],
    "pytest_cutover.rehearsal.pgbouncer": ["PGBOUNCER_BIN", "PgBouncer", "PoolMode", "client_ssl_context",
                                           "find_pgbouncer", "tls_login"],
    "pytest_cutover.rehearsal.faults": ["AFTER_PRESYNC", "AFTER_SYNC", "BEFORE", "DURING_MONITOR", "FAULTS",
                                        "SURFACE_FAULTS", "Fault", "FaultTarget",
                                        "clear_runtime_faults", "faults_due", "get_fault", "list_faults", "plant",
                                        "plant_due", "run_git", "undo", "validate_faults"],
    "pytest_cutover.rehearsal.ctl": ["PID_FILE", "STATE_FILE", "app_answers", "main", "read_state", "restart_app",
                                     "start_app", "stop_all", "stop_app", "write_state"],
    "pytest_cutover.rehearsal.stack": ["CONFIG_NAME", "ENV_NAME", "EmbeddedStack", "StackBase", "StackUrls", "env_text",
                                       "load_stack_environ", "read_env_file", "services_available"],
    "pytest_cutover.rehearsal.fixtures": ["embedded_stack", "pytest_addoption"],
    "pytest_cutover.rehearsal.leftovers": ["FOLDER_PREFIX", "StaleStack", "is_stack_part", "owner_record",
                                           "stale_stacks", "sweep_stale_stacks"],
}


@pytest.mark.parametrize("module", sorted(EXPORTS))
def test_all_is_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == sorted(EXPORTS[module])  # (its order is ruff's RUF022 order)
    for name in mod.__all__:
        assert hasattr(mod, name), name
