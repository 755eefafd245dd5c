"""The .env editor reads escaped quotes the way the app's dotenv does, and never quotes a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cutover.actions.base import ActionError
from pytest_cutover.actions.envfile import find_line, set_value
from pytest_cutover.actions.pg import endpoint

QUOTED = 'postgresql://app:Zq"8\\\\w\'p@old-db.internal:5432/app'  # a password holding " \ and '


@pytest.mark.parametrize(("line", "value"), [
    (b'DATABASE_URL="postgresql://app:Zq\\"8\\\\\\\\w\'p@old-db.internal:5432/app"  # old\n', QUOTED),
    (b"DATABASE_URL='postgresql://app:Zq\"8\\\\\\\\w\\'p@old-db.internal:5432/app'\n", QUOTED),
])
def test_escaped_quotes_inside_a_quoted_value_are_part_of_it(tmp_path: Path, line: bytes, value: str) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"A=1\n" + line + b"B=2\n")
    found = find_line(env, "DATABASE_URL")
    assert found is not None and found.value == value
    assert str(endpoint(found.value)) == "app@old-db.internal:5432/app"
    # written back byte for byte, and a new value holding the quote character is escaped, not refused
    assert set_value(env, "DATABASE_URL", value) == (value, False)
    new = 'postgresql://app:N"ew\\pw@pooler:6543/app'
    assert set_value(env, "DATABASE_URL", new) == (value, True)
    again = find_line(env, "DATABASE_URL")
    assert again is not None and again.value == new
    set_value(env, "DATABASE_URL", value)
    assert env.read_bytes() == b"A=1\n" + line + b"B=2\n"


def test_an_unparsable_url_is_described_without_quoting_it() -> None:
    with pytest.raises(ActionError) as err:
        endpoint("postgresql://app:Zq8wLmp9/xk#Tq@db:5432/app")
    assert "the password contains `/`" in str(err.value)
    for piece in ("Zq8wLmp9", "xk#Tq", "Tq@db"):
        assert piece not in str(err.value)
    with pytest.raises(ActionError) as err:
        endpoint("postgresql://app:Zq8wLmp9@db:po9rt/app")
    assert "the port is not a number" in str(err.value) and "po9rt" not in str(err.value)
