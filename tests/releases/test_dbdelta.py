"""DB deltas applied to real PostgreSQL and MariaDB databases, each test on a fresh one."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from slipway.core.errors import (
    ConflictError,
    ExternalServiceError,
    InputError,
    InvalidStateError,
)
from slipway.releases.dbapply import DbScriptError, apply
from slipway.releases.dbdelta import plan_rollback, plan_upgrade
from slipway.releases.dbpackage import DbScript, DbVersion, load_versions, version_key
from slipway.releases.dbtarget import HISTORY_TABLE, TargetDatabase, installed_version
from tests.conftest import free_port
from tests.releases import databases
from tests.releases.databases import FreshDatabase

fresh_db = databases.fresh_db
password_db = databases.password_db

PACKAGE = "demo-app-db_1.10.0_20250101001.tar.gz"

V1_0 = {
    "app_v1.0/increment/1_create_db_tables.sql": (
        "CREATE TABLE app_user (id INT PRIMARY KEY, name VARCHAR(50));\n"
        "CREATE TABLE app_role (id INT PRIMARY KEY, title VARCHAR(50));\n"
    ),
    "app_v1.0/increment/2_insert_init_data.sql": (
        "-- a semicolon and a percent sign inside strings must survive the split\n"
        "INSERT INTO app_user VALUES (1, 'admin; root');\n"
        "INSERT INTO app_role VALUES (1, '100% admin'); -- trailing comment\n"
    ),
    "app_v1.0/rollback/1_delete_db_data.sql": "DELETE FROM app_role;\nDELETE FROM app_user;\n",
    "app_v1.0/rollback/2_drop_db_tables.sql": "DROP TABLE app_role;\nDROP TABLE app_user;\n",
}
V1_1 = {
    "app_v1.1/increment/1_orders.sql": (
        "CREATE TABLE app_order (id INT PRIMARY KEY, user_id INT);\n"
        "ALTER TABLE app_user ADD COLUMN email VARCHAR(100);\n"
    ),
    "app_v1.1/increment/2_emails.sql": "UPDATE app_user SET email = 'admin@example.com';\n",
    "app_v1.1/rollback/1_drop_column.sql": "ALTER TABLE app_user DROP COLUMN email;\n",
    "app_v1.1/rollback/2_drop_orders.sql": "DROP TABLE app_order;\n",
}
V1_2 = {
    "app_v1.2/increment/1_settings.sql": (
        "CREATE TABLE app_setting (name VARCHAR(50) PRIMARY KEY, value VARCHAR(200));\n"
        "INSERT INTO app_setting VALUES ('theme', 'dark');\n"
    ),
    "app_v1.2/rollback/1_drop_settings.sql": "DROP TABLE app_setting;\n",
}
V1_10 = {
    "app_v1.10/increment/1_audit.sql": "CREATE TABLE app_audit (id INT PRIMARY KEY);\n",
    "app_v1.10/rollback/1_drop_audit.sql": "DROP TABLE app_audit;\n",
}


def package(*parts: dict[str, str]) -> list[DbVersion]:
    files: dict[str, bytes] = {}
    for part in parts:
        files.update({path: sql.encode() for path, sql in part.items()})
    return load_versions(files)


ALL = package(V1_0, V1_1, V1_2, V1_10)


class Log(list[str]):
    """The lines `apply` logged."""

    def __call__(self, line: str) -> None:
        self.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self)


def upgrade(
    db: FreshDatabase,
    versions: list[DbVersion],
    target: str,
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Plan and apply an upgrade of `db` to `target`."""
    target_db = db.target()
    plan = plan_upgrade(target_db, versions, target)
    return apply(target_db, plan, package=PACKAGE, log=Log() if log is None else log)


def history(db: FreshDatabase) -> list[tuple[str, str, str, bool]]:
    rows = db.rows(f"SELECT version, script, action, success FROM {HISTORY_TABLE} ORDER BY id")
    return [(version, script, action, bool(success)) for version, script, action, success in rows]


def names(plan_scripts: list[DbScript]) -> list[tuple[str, str]]:
    return [(script.version, script.name) for script in plan_scripts]


APP_TABLES_1_0 = {"app_user", "app_role"}


# --- the package (no database) ----------------------------------------------------------------


def test_versions_and_scripts_sort_numerically() -> None:
    versions = package(
        {
            "app_v1.10/increment/1_a.sql": "SELECT 1;",
            "app_v1.9/increment/10_later.sql": "SELECT 10;",
            "app_v1.9/increment/2_earlier.sql": "SELECT 2;",
            "app_v1.9/rollback/1_undo.sql": "SELECT 3;",
            "app_v1.0.1/increment/1_b.sql": "SELECT 4;",
        }
    )
    assert [v.version for v in versions] == ["1.0.1", "1.9", "1.10"]
    assert [s.name for s in versions[1].increment] == ["2_earlier.sql", "10_later.sql"]
    assert [s.name for s in versions[1].rollback] == ["1_undo.sql"]
    script = versions[1].increment[0]
    assert script.path == "app_v1.9/increment/2_earlier.sql"
    assert script.checksum == hashlib.sha256(b"SELECT 2;").hexdigest()
    assert version_key("1.0") == (1, 0, 0) == version_key("1.0.0.0")
    assert version_key("1.0") < version_key("1.0.1") < version_key("1.9") < version_key("1.10")


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({}, "the package holds no files"),
        ({"README.md": b"hello"}, "README.md: not a version directory"),
        ({"app_v1.0/increment/create.sql": b"SELECT 1;"}, "create.sql: no number prefix"),
        ({"app_v1.0/increment/1_notes.txt": b"x"}, "1_notes.txt: not an SQL script"),
        ({"app_v1.0/increment/1_empty.sql": b" \n"}, "1_empty.sql: empty script"),
        ({"app_v1.0/1_create.sql": b"SELECT 1;"}, "app_v1.0/1_create.sql: scripts belong in"),
        ({"app_v1.0/rollback/1_undo.sql": b"SELECT 1;"}, "app_v1.0: no increment scripts"),
        (
            {
                "app_v1.0/increment/1_a.sql": b"SELECT 1;",
                "app_v1.0/increment/1_b.sql": b"SELECT 2;",
            },
            "more than one script numbered 1",
        ),
        (
            {
                "app_v1.0/increment/1_a.sql": b"SELECT 1;",
                "app_v1.0.0/increment/1_a.sql": b"SELECT 1;",
            },
            "the same version as",
        ),
        ({"app_v1.0/increment/1_a.sql": b"\xff\xfe\x00bad"}, "not UTF-8"),
    ],
)
def test_bad_package_is_refused_naming_the_problem(files: dict[str, bytes], problem: str) -> None:
    with pytest.raises(InputError) as caught:
        load_versions(files)
    assert caught.value.code == "bad_db_package"
    assert any(problem in line for line in caught.value.details["problems"]), caught.value.details
    assert problem in caught.value.message or "more" in caught.value.message


def test_target_database_never_shows_its_password() -> None:
    target = TargetDatabase("postgresql+psycopg://app:in-url-secret@db.example:5432/app", "s3cret")
    assert "s3cret" not in repr(target) and "in-url-secret" not in repr(target)
    assert target.display_url == "postgresql+psycopg://app@db.example:5432/app"
    with pytest.raises(InputError) as caught:
        TargetDatabase("sqlite:///x.db")
    assert caught.value.code == "bad_db_url"


# --- upgrades ---------------------------------------------------------------------------------


def test_fresh_install_applies_every_version_up_to_the_target_in_order(
    fresh_db: FreshDatabase,
) -> None:
    target = fresh_db.target()
    assert installed_version(target) is None
    plan = plan_upgrade(target, ALL, "1.2")

    dry_run = json.loads(json.dumps(plan.to_dict()))
    assert dry_run["installed"] is None and dry_run["action"] == "increment"
    assert [(s["version"], s["script"], s["statements"]) for s in dry_run["scripts"]] == [
        ("1.0", "1_create_db_tables.sql", 2),
        ("1.0", "2_insert_init_data.sql", 2),
        ("1.1", "1_orders.sql", 2),
        ("1.1", "2_emails.sql", 1),
        ("1.2", "1_settings.sql", 2),
    ]
    assert all(len(s["checksum"]) == 64 for s in dry_run["scripts"])
    assert fresh_db.tables() == set(), "a plan changes nothing"

    log = Log()
    result = apply(target, plan, package=PACKAGE, log=log)

    assert result["installed_before"] is None and result["installed_after"] == "1.2"
    assert [(a["version"], a["script"]) for a in result["applied"]] == names(plan.scripts)
    assert installed_version(target) == "1.2"
    assert fresh_db.tables() == APP_TABLES_1_0 | {"app_order", "app_setting", HISTORY_TABLE}
    assert fresh_db.rows("SELECT id, name, email FROM app_user") == [
        (1, "admin; root", "admin@example.com")
    ]
    assert fresh_db.rows("SELECT title FROM app_role") == [("100% admin",)]
    assert history(fresh_db) == [(v, s, "increment", True) for v, s in names(plan.scripts)]
    recorded = fresh_db.rows(f"SELECT package, installed_by, checksum FROM {HISTORY_TABLE}")
    assert {(package, user) for package, user, _ in recorded} == {(PACKAGE, fresh_db.user)}
    assert [checksum for _, _, checksum in recorded] == [s.checksum for s in plan.scripts]
    assert any(line.startswith("1.1 increment 2_emails.sql: 1 statements, ") for line in log)
    assert all("password" not in line and fresh_db.password not in line for line in log)


def test_second_upgrade_applies_exactly_the_delta(fresh_db: FreshDatabase) -> None:
    upgrade(fresh_db, package(V1_0), "1.0")
    target = fresh_db.target()

    plan = plan_upgrade(target, ALL, "1.10.0")
    assert plan.installed == "1.0"
    assert names(plan.scripts) == [
        ("1.1", "1_orders.sql"),
        ("1.1", "2_emails.sql"),
        ("1.2", "1_settings.sql"),
        ("1.10", "1_audit.sql"),
    ]
    apply(target, plan, package=PACKAGE, log=Log())

    assert installed_version(target) == "1.10"
    assert [row[:2] for row in history(fresh_db)] == [
        ("1.0", "1_create_db_tables.sql"),
        ("1.0", "2_insert_init_data.sql"),
        *names(plan.scripts),
    ]
    assert "app_audit" in fresh_db.tables()
    assert plan_upgrade(target, ALL, "1.10").action == "none"


def test_target_below_the_installed_version_is_refused(fresh_db: FreshDatabase) -> None:
    upgrade(fresh_db, ALL, "1.1")
    target = fresh_db.target()

    with pytest.raises(InputError) as caught:
        plan_upgrade(target, ALL, "1.0")
    assert caught.value.code == "target_below_installed"
    assert caught.value.details == {"installed": "1.1", "target": "1.0"}
    assert "roll back" in caught.value.message

    same = plan_upgrade(target, ALL, "1.1.0")  # 1.1.0 is 1.1; an app version without SQL is fine
    assert (same.action, same.scripts) == ("none", [])
    assert apply(target, same, package=PACKAGE, log=Log())["applied"] == []
    assert installed_version(target) == "1.1"


def test_changed_script_of_an_applied_version_is_refused_before_anything_runs(
    fresh_db: FreshDatabase,
) -> None:
    upgrade(fresh_db, package(V1_0), "1.0")
    before = history(fresh_db)
    changed = dict(V1_0)
    changed["app_v1.0/increment/2_insert_init_data.sql"] += "INSERT INTO app_user VALUES (2, 'b');"
    changed["app_v1.0/increment/3_late_addition.sql"] = "SELECT 1;"
    versions = package(changed, V1_1)

    with pytest.raises(InputError) as caught:
        plan_upgrade(fresh_db.target(), versions, "1.1")

    assert caught.value.code == "checksum_changed"
    old = hashlib.sha256(V1_0["app_v1.0/increment/2_insert_init_data.sql"].encode()).hexdigest()
    new = versions[0].increment[1].checksum
    assert caught.value.details == [
        {
            "version": "1.0",
            "action": "increment",
            "script": "2_insert_init_data.sql",
            "recorded": old,
            "now": new,
        },
        {
            "version": "1.0",
            "action": "increment",
            "script": "3_late_addition.sql",
            "recorded": None,
            "now": versions[0].increment[2].checksum,
        },
    ]
    with pytest.raises(InputError):
        plan_rollback(fresh_db.target(), versions, None)
    assert "app_order" not in fresh_db.tables()
    assert fresh_db.rows("SELECT id FROM app_user") == [(1,)]
    assert history(fresh_db) == before


def test_failing_statement_stops_the_plan_and_is_recorded(fresh_db: FreshDatabase) -> None:
    broken = {
        **V1_1,
        "app_v1.1/increment/2_emails.sql": (
            "CREATE TABLE t_before (id INT);\n"
            "INSERT INTO t_before VALUES (1);\n"
            "CREAT TABLE broken (id INT);\n"
            "CREATE TABLE t_after (id INT);\n"
        ),
    }
    target, log = fresh_db.target(), Log()
    plan = plan_upgrade(target, package(V1_0, broken, V1_2), "1.2")

    with pytest.raises(DbScriptError) as caught:
        apply(target, plan, package=PACKAGE, log=log)

    error = caught.value
    assert error.code == "db_script_failed"
    assert error.details["version"] == "1.1" and error.details["script"] == "2_emails.sql"
    assert error.details["statement_number"] == 3
    assert error.details["statement"] == "CREAT TABLE broken (id INT);"
    assert "syntax" in error.details["error"].lower()
    assert [(a["version"], a["script"]) for a in error.result["applied"]] == names(plan.scripts[:3])
    assert error.result["installed_after"] == "1.0"
    assert installed_version(target) == "1.0"
    tables = fresh_db.tables()
    assert {"app_user", "app_order"} <= tables, "scripts before the failure stay applied"
    assert not {"broken", "t_after", "app_setting"} & tables, "nothing after it ran"
    assert history(fresh_db)[-2:] == [
        ("1.1", "1_orders.sql", "increment", True),
        ("1.1", "2_emails.sql", "increment", False),
    ]
    recorded_error = fresh_db.scalar(f"SELECT error FROM {HISTORY_TABLE} WHERE success = false")
    assert recorded_error.startswith("statement 3: ")

    if fresh_db.kind == "postgresql":
        # One transaction per script: its first two statements went with it.
        assert "t_before" not in tables
        assert error.details["committed_statements"] == 0
        assert "transaction was rolled back" in log.text
    else:
        # MariaDB committed the CREATE TABLE and, statement by statement, the INSERT after it.
        assert "t_before" in tables
        assert fresh_db.rows("SELECT id FROM t_before") == [(1,)]
        assert error.details["committed_statements"] == 2
        said = "statements before 3 were committed; MariaDB cannot roll DDL back"
        assert said in log.text and said in error.message and said in recorded_error

    # Fixed (idempotently, as the spec advises), the next upgrade resumes at the failed script.
    fixed = {
        **V1_1,
        "app_v1.1/increment/2_emails.sql": (
            "CREATE TABLE IF NOT EXISTS t_before (id INT);\n"
            "DELETE FROM t_before;\n"
            "INSERT INTO t_before VALUES (1);\n"
            "CREATE TABLE t_after (id INT);\n"
        ),
    }
    retry = plan_upgrade(target, package(V1_0, fixed, V1_2), "1.2")
    assert names(retry.scripts) == [("1.1", "2_emails.sql"), ("1.2", "1_settings.sql")]
    apply(target, retry, package=PACKAGE, log=Log())
    assert installed_version(target) == "1.2"
    assert {"t_before", "t_after", "app_setting"} <= fresh_db.tables()


def test_failing_data_script_leaves_none_of_its_rows(fresh_db: FreshDatabase) -> None:
    upgrade(fresh_db, package(V1_0), "1.0")
    duplicate = {
        "app_v1.1/increment/1_data.sql": (
            "INSERT INTO app_user VALUES (10, 'new');\nINSERT INTO app_user VALUES (1, 'again');\n"
        )
    }
    log = Log()
    with pytest.raises(DbScriptError) as caught:
        upgrade(fresh_db, package(V1_0, duplicate), "1.1", log=log)

    # Data-only scripts are one transaction on MariaDB too.
    assert caught.value.details["statement_number"] == 2
    assert caught.value.details["committed_statements"] == 0
    assert fresh_db.rows("SELECT id FROM app_user") == [(1,)]
    assert "transaction was rolled back" in log.text
    assert installed_version(fresh_db.target()) == "1.0"


# --- rollbacks --------------------------------------------------------------------------------


def test_rollback_runs_rollback_scripts_newest_version_first(fresh_db: FreshDatabase) -> None:
    upgrade(fresh_db, ALL, "1.10")
    target = fresh_db.target()

    plan = plan_rollback(target, ALL, "1.0")
    assert (plan.installed, plan.target, plan.action) == ("1.10", "1.0", "rollback")
    assert names(plan.scripts) == [
        ("1.10", "1_drop_audit.sql"),
        ("1.2", "1_drop_settings.sql"),
        ("1.1", "1_drop_column.sql"),
        ("1.1", "2_drop_orders.sql"),
    ]
    result = apply(target, plan, package=PACKAGE, log=Log())

    assert result["installed_after"] == "1.0" == installed_version(target)
    assert fresh_db.tables() == APP_TABLES_1_0 | {HISTORY_TABLE}
    assert fresh_db.rows("SELECT * FROM app_user") == [(1, "admin; root")], "email column gone"
    assert [row[:3] for row in history(fresh_db)[-4:]] == [
        (v, s, "rollback") for v, s in names(plan.scripts)
    ]

    everything = plan_rollback(target, ALL, None)  # one version back from 1.0 is nothing
    assert (everything.target, names(everything.scripts)) == (
        None,
        [("1.0", "1_delete_db_data.sql"), ("1.0", "2_drop_db_tables.sql")],
    )
    apply(target, everything, package=PACKAGE, log=Log())
    assert installed_version(target) is None
    assert fresh_db.tables() == {HISTORY_TABLE}
    assert plan_rollback(target, ALL, None).action == "none"


def test_rollback_then_upgrade_again(fresh_db: FreshDatabase) -> None:
    upgrade(fresh_db, ALL, "1.2")
    target = fresh_db.target()

    back = plan_rollback(target, ALL, None)
    assert (back.target, names(back.scripts)) == ("1.1", [("1.2", "1_drop_settings.sql")])
    apply(target, back, package=PACKAGE, log=Log())
    assert installed_version(target) == "1.1"
    assert "app_setting" not in fresh_db.tables()

    again = plan_upgrade(target, ALL, "1.2")
    assert names(again.scripts) == [("1.2", "1_settings.sql")]
    apply(target, again, package=PACKAGE, log=Log())
    assert installed_version(target) == "1.2"
    assert fresh_db.rows("SELECT name, value FROM app_setting") == [("theme", "dark")]

    apply(target, plan_rollback(target, ALL, "1.0"), package=PACKAGE, log=Log())
    assert installed_version(target) == "1.0"
    upgrade(fresh_db, ALL, "1.2")
    assert installed_version(target) == "1.2"
    assert fresh_db.rows("SELECT email FROM app_user") == [("admin@example.com",)]


def test_half_done_rollback_blocks_upgrades_and_is_finished_by_the_next_rollback(
    fresh_db: FreshDatabase,
) -> None:
    upgrade(fresh_db, ALL, "1.1")
    target = fresh_db.target()
    broken = {**V1_1, "app_v1.1/rollback/2_drop_orders.sql": "DROP TABLE no_such_table;\n"}
    with pytest.raises(DbScriptError):
        apply(
            target, plan_rollback(target, package(V1_0, broken), "1.0"), package=PACKAGE, log=Log()
        )

    assert installed_version(target) == "1.0", (
        "a version stops being installed at its first rollback"
    )
    assert "app_order" in fresh_db.tables()
    with pytest.raises(InvalidStateError) as caught:
        plan_upgrade(target, ALL, "1.1")
    assert caught.value.code == "db_partly_rolled_back"

    finish = plan_rollback(target, ALL, "1.0")
    assert names(finish.scripts) == [("1.1", "2_drop_orders.sql")]
    apply(target, finish, package=PACKAGE, log=Log())
    assert "app_order" not in fresh_db.tables()
    upgrade(fresh_db, ALL, "1.1")
    assert installed_version(target) == "1.1"


# --- control and access -----------------------------------------------------------------------


class Stop(Exception):
    pass


def stop_on_call(number: int) -> Callable[[], None]:
    calls = 0

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls == number:
            raise Stop("canceled")

    return check


def test_check_raising_stops_between_scripts(fresh_db: FreshDatabase) -> None:
    target, log = fresh_db.target(), Log()
    plan = plan_upgrade(target, ALL, "1.0")

    with pytest.raises(Stop):
        apply(target, plan, package=PACKAGE, log=log, check=stop_on_call(2))

    assert "stopped before 1.0 increment 2_insert_init_data.sql" in log
    assert APP_TABLES_1_0 <= fresh_db.tables()
    assert fresh_db.rows("SELECT * FROM app_user") == []
    assert history(fresh_db) == [("1.0", "1_create_db_tables.sql", "increment", True)]
    assert installed_version(target) is None, "a version is installed only once all its scripts ran"

    resumed = plan_upgrade(target, ALL, "1.0")
    assert names(resumed.scripts) == [("1.0", "2_insert_init_data.sql")]
    apply(target, resumed, package=PACKAGE, log=Log())
    assert installed_version(target) == "1.0"
    assert fresh_db.rows("SELECT id FROM app_user") == [(1,)]


def test_a_plan_made_before_another_run_is_refused(fresh_db: FreshDatabase) -> None:
    target = fresh_db.target()
    first, second = plan_upgrade(target, ALL, "1.0"), plan_upgrade(target, ALL, "1.0")
    apply(target, first, package=PACKAGE, log=Log())

    with pytest.raises(ConflictError) as caught:
        apply(target, second, package=PACKAGE, log=Log())
    assert caught.value.code == "db_changed"
    assert len(history(fresh_db)) == 2


def test_two_runs_on_one_database_never_overlap(fresh_db: FreshDatabase) -> None:
    target = fresh_db.target()
    first, second = plan_upgrade(target, ALL, "1.0"), plan_upgrade(target, ALL, "1.0")
    codes: list[str] = []

    def start_second_run() -> None:
        if not codes:
            with pytest.raises(ConflictError) as caught:
                apply(target, second, package=PACKAGE, log=Log())
            codes.append(caught.value.code)

    apply(target, first, package=PACKAGE, log=Log(), check=start_second_run)
    assert codes == ["db_busy"]
    assert len(history(fresh_db)) == 2


def test_wrong_password_is_refused_without_showing_it(password_db: FreshDatabase) -> None:
    secret = f"Wr0ng-{uuid.uuid4().hex}"
    log = Log()
    plan = plan_upgrade(password_db.target(), ALL, "1.0")
    attempts: list[Callable[[TargetDatabase], object]] = [
        installed_version,
        lambda db: plan_upgrade(db, ALL, "1.0"),
        lambda db: apply(db, plan, package=PACKAGE, log=log),
    ]
    in_url = TargetDatabase(password_db.url.replace("@", f":{secret}@", 1))
    for wrong in (password_db.target(secret), in_url):
        for attempt in attempts:
            with pytest.raises(ExternalServiceError) as caught:
                attempt(wrong)
            error = caught.value
            assert error.code == "db_auth_failed", error.message
            assert password_db.user in error.message
            shown = f"{error} {error.message} {error.details!r} {wrong!r} {log.text}"
            assert secret not in shown
    assert password_db.tables() == set()
    assert installed_version(password_db.target()) is None, "the right password works"


def test_unreachable_database_is_a_clear_error() -> None:
    target = TargetDatabase(f"mysql+pymysql://app@127.0.0.1:{free_port()}/app", "pw-hidden-123")
    with pytest.raises(ExternalServiceError) as caught:
        installed_version(target)
    assert caught.value.code == "db_unreachable"
    assert "127.0.0.1" in caught.value.message and "pw-hidden-123" not in caught.value.message
