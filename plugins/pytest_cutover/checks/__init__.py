"""Probes the acceptance suite runs: each returns a small :class:`CheckResult` (ok, evidence, figures).

One module per probe family: ``db`` (connections), ``code`` (the app checkout), ``backup``,
``counts``, ``target`` (pgvector, storage), ``pooler``, ``tls``, ``rls_audit`` (static RLS
posture), ``app_source`` (engine settings, RLS context), ``team`` (attestations) and
``isolation`` (the rls stage's cross-tenant probes with negative controls).  Nothing here
imports pytest: the packaged suite's modules (``pytest_cutover/suite/``) are thin adapters over these.
"""

from __future__ import annotations

from pytest_cutover.checks.base import CheckResult

__all__ = ["CheckResult"]
