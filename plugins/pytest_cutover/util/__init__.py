"""Small helpers that production code and the rehearsal both need, one job per module.

Why a neutral package: production (checks, actions, migrate, monitor, notify, report, week1) must run
from a plain install and import nothing from ``pytest_cutover.rehearsal``; the rehearsal reuses these
same helpers instead of keeping its own copies.  Nothing here imports from either side; only ``proc``
uses the core (errors, redaction), and the layer test places it there.
"""
