"""The example config in fixtures/ is valid, so the README's config reference cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_cutover.config import load_config

EXAMPLE = Path(__file__).resolve().parents[3] / "fixtures" / "cutover.example.toml"


def test_the_example_config_validates_with_its_variables_set() -> None:
    names = set(re.findall(r"\$\{([A-Z_]+)\}", EXAMPLE.read_text()))
    env = {name: f"postgresql://u:pw-{name.lower()}@h:6543/db" for name in names}
    config = load_config(EXAMPLE, env=env)
    assert config is not None and config.run.id == "prod-2026-11-26"
    assert set(config.team) == {"stakeholders_notified", "support_standby", "rollback_plan_documented",
                                "escalation_contacts"}
    assert config.thresholds.migration_success == 1.0
