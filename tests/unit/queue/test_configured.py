"""[queue] url: the connection string with its password, and its mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from mailwright.config import parse_config
from mailwright.errors import ConfigError
from mailwright.queue.configured import database_conninfo, describe_store


def test_no_url_is_the_embedded_queue(tmp_path: Path) -> None:
    c = parse_config({"data_dir": str(tmp_path)})
    assert database_conninfo(c) is None
    assert describe_store(c) == str(tmp_path / "queue.sqlite3")


def test_password_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "db-password").write_text("s3cret\n")
    c = parse_config(
        {"queue": {"url": "postgresql://mw@db.example/mail", "password_file": "db-password"}},
        tmp_path / "mw.toml",
    )
    conninfo = database_conninfo(c)
    assert conninfo is not None
    parts = conninfo_to_dict(conninfo)
    assert (parts["password"], parts["user"], parts["dbname"]) == ("s3cret", "mw", "mail")
    assert parts["application_name"] == "mailwright"
    assert describe_store(c) == "postgresql://mw@db.example/mail"  # never the password


def test_password_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MW_DB_PASSWORD", "from-env")
    c = parse_config(
        {"queue": {"url": "postgresql://mw@db.example/mail", "password_env": "MW_DB_PASSWORD"}}
    )
    conninfo = database_conninfo(c)
    assert conninfo is not None and conninfo_to_dict(conninfo)["password"] == "from-env"


def test_password_given_twice(tmp_path: Path) -> None:
    c = parse_config({"queue": {"url": "postgresql://mw:pw@db.example/mail", "password_env": "X"}})
    with pytest.raises(ConfigError, match=r"password given twice \(url and password_env\)"):
        database_conninfo(c)


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        ({"url": "mysql://db/x"}, "is not a postgresql:// URL"),
        ({"password_env": "X"}, "a password but no url"),
        ({"url": "postgresql://db/x", "pasword_file": "f"}, "unknown setting"),
    ],
)
def test_config_mistakes(queue: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"queue": queue})
