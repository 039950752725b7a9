"""DB packages deployed with releases, on the machine's real PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

from tests.releases import databases
from tests.releases.archives import make_app_package, make_db_package
from tests.releases.conftest import SQLITE_ONLY, World, app_scripts

pytestmark = pytest.mark.slow
fresh_db = databases.fresh_db

V1 = {
    "app_v1.0": {
        "increment": {
            "1_create_tables.sql": "CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(50));",
            "2_insert_init_data.sql": "INSERT INTO orders (id, note) VALUES (1, 'first');",
        },
        "rollback": {"1_drop_tables.sql": "DROP TABLE orders;"},
    }
}
V11 = {
    **V1,
    "app_v1.1": {
        "increment": {"1_add.sql": "CREATE TABLE customers (id INT PRIMARY KEY);"},
        "rollback": {"1_drop.sql": "DROP TABLE customers;"},
    },
}


def setup(world: World, db: databases.FreshDatabase) -> None:
    world.setup(host_count=1, database={"url": db.url, "password": db.password})


def app(world: World, version: str, **scripts: str) -> None:
    world.upload(
        make_app_package(
            world.tmp_path,
            "demo-app",
            version,
            {"conf/app.properties": "db=[@db_ip]\n"},
            scripts=app_scripts(**scripts),
        )
    )


def test_a_deploy_applies_exactly_the_delta(world: World, fresh_db) -> None:
    setup(world, fresh_db)
    world.upload(make_db_package(world.tmp_path, "demo-app", "1.0.0", V1))
    world.upload(make_db_package(world.tmp_path, "demo-app", "1.1.0", V11))
    app(world, "1.0.0")
    app(world, "1.1.0")

    first = world.deploy_and_wait(package="1.0.0", db_package="1.0.0")
    assert first["status"] == "succeeded", {k: first.get(k) for k in ("error", "db", "hosts")}
    assert fresh_db.tables() >= {"orders", "slipway_db_history"}
    assert "customers" not in fresh_db.tables()

    dry = world.client.post(
        world.env_path("/deployments"),
        headers=world.operator,
        json={"package": "1.1.0", "db_package": "1.1.0", "dry_run": True},
    )
    assert dry.status_code == 200, dry.text
    plan = dry.json()["db"]
    assert plan["installed"] == "1.0" and [s["script"] for s in plan["scripts"]] == ["1_add.sql"]

    second = world.deploy_and_wait(package="1.1.0", db_package="1.1.0")
    assert second["status"] == "succeeded", second
    assert "customers" in fresh_db.tables()
    assert fresh_db.scalar("SELECT COUNT(*) FROM orders") == 1  # 1.0 was not applied twice
    assert "password" not in str(second["db"]).lower() or fresh_db.password not in str(second)


@SQLITE_ONLY
def test_a_broken_script_stops_before_any_host_is_touched(world: World, fresh_db) -> None:
    setup(world, fresh_db)
    broken = {
        "app_v1.0": {
            "increment": {
                "1_ok.sql": "CREATE TABLE fine (id INT);",
                "2_broken.sql": "CREATE TABLEE oops (id INT);",
            }
        }
    }
    world.upload(make_db_package(world.tmp_path, "demo-app", "1.0.0", broken))
    app(world, "1.0.0")

    view = world.deploy_and_wait(package="1.0.0", db_package="1.0.0")

    assert view["status"] == "failed"
    assert view["error"]["code"] == "db_script_failed"
    assert "CREATE TABLEE" in str(view["error"])
    assert world.current(world.hosts[0]) == ""
    assert [h["status"] for h in view["hosts"]] == ["skipped"]
    rows = fresh_db.rows("SELECT script, success FROM slipway_db_history ORDER BY id")
    assert [(r[0], bool(r[1])) for r in rows] == [("1_ok.sql", True), ("2_broken.sql", False)]


@SQLITE_ONLY
def test_a_release_rollback_takes_the_database_back(world: World, fresh_db) -> None:
    setup(world, fresh_db)
    world.upload(make_db_package(world.tmp_path, "demo-app", "1.1.0", V11))
    app(world, "1.0.0")
    app(world, "1.1.0")
    assert world.deploy_and_wait(package="1.0.0")["status"] == "succeeded"
    world.deploy_and_wait(package="1.1.0", db_package="1.1.0")
    assert "customers" in fresh_db.tables()

    answer = world.client.post(
        world.env_path("/rollback"), headers=world.operator, json={"to": "1.0.0", "db": True}
    )
    assert answer.status_code == 202, answer.text
    view = world.wait(answer.json()["deployment"]["id"])

    assert view["status"] == "succeeded", view
    assert world.current(world.hosts[0]) == "demo-app_1.0.0"
    assert "customers" not in fresh_db.tables() and "orders" in fresh_db.tables()
