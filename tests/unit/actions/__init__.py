"""Tests of the cutover actions (maintenance, DATABASE_URL switch, restart, rollback, CLI)."""
