"""pytest-cutover: a production database cutover as ordered, gated, rehearsable pytest stages."""

from pytest_cutover.stages import BLOCKED, FAILED, INCOMPLETE, NOT_RUN, PASSED, ROLLBACK, STAGES, SUCCESS

__all__ = ["BLOCKED", "FAILED", "INCOMPLETE", "NOT_RUN", "PASSED", "ROLLBACK", "STAGES", "SUCCESS", "__version__"]

__version__ = "0.1.0"
