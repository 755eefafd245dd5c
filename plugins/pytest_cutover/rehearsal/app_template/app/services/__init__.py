"""Service singletons, where the runbook's smoke tests import them from."""
