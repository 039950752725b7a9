"""Docker endpoints without TLS: the built-in `local`, CRUD, revisions, roles and every refusal."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from slipway.core.db import session_scope
from slipway.core.errors import InputError
from slipway.targets import service
from tests.api.helpers import assert_error, assert_invalid
from tests.conftest import free_port
from tests.targets.helpers import ENDPOINTS, endpoint_state, names

LOCAL_URL = "unix:///var/run/docker.sock"


def engine_version() -> str:
    client = docker.DockerClient(base_url=LOCAL_URL)
    try:
        return str(client.version()["Version"])
    finally:
        client.close()


# --- the built-in endpoint ------------------------------------------------------------------------


def test_local_exists_without_anyone_creating_it_and_answers_a_test(docker_engine, client, auth):
    listed = client.get(ENDPOINTS, headers=auth["viewer"])

    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["next_cursor"] is None
    [local] = body["items"]
    assert local["name"] == "local"
    assert local["url"] == LOCAL_URL
    assert local["is_builtin"] is True
    assert local["has_tls"] is False and local["tls_expires_at"] is None
    assert local["revision"] == 1
    assert local["last_checked_at"] is None  # not pinged when it was written

    tested = client.post(f"{ENDPOINTS}/local/test", headers=auth["operator"])

    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True
    assert tested.json()["engine"]["version"] == engine_version()
    assert tested.json()["engine"]["os"] == "linux"
    shown = client.get(f"{ENDPOINTS}/local", headers=auth["viewer"]).json()
    assert shown["engine"]["version"] == engine_version()
    assert shown["last_checked_at"] == tested.json()["checked_at"]
    assert shown["last_error"] is None
    revisions = client.get(f"{ENDPOINTS}/local/revisions", headers=auth["viewer"]).json()
    assert [(r["revision"], r["actor"], r["changes"]) for r in revisions["items"]] == [
        (1, "system", ["created"])
    ]


def test_local_takes_its_first_address_from_the_setting_and_api_edits_win(settings):
    first = settings.model_copy(update={"docker_host": "tcp://10.1.2.3:2375"})
    later = settings.model_copy(update={"docker_host": "unix:///run/other.sock"})

    with session_scope(settings) as session:
        assert service.ensure_local(session, first).url == "tcp://10.1.2.3:2375"
    with session_scope(settings) as session:
        assert service.ensure_local(session, later).url == "tcp://10.1.2.3:2375"
        assert service.engine_spec(session, later, "local").url == "tcp://10.1.2.3:2375"
        assert [e.name for e in service.list_(session, settings=later)] == ["local"]


def test_local_is_written_once_when_first_requests_race(settings):
    barrier = threading.Barrier(6)

    def first_use() -> list[str]:
        with session_scope(settings) as session:
            barrier.wait(timeout=10)
            return [endpoint.name for endpoint in service.list_(session, settings=settings)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        seen = list(pool.map(lambda _: first_use(), range(6)))

    assert seen == [["local"]] * 6
    state = endpoint_state(settings)
    assert [row[0] for row in state["endpoints"]] == ["local"]
    assert len(state["revisions"]) == 1


def test_a_bad_docker_host_setting_is_refused_naming_it(settings):
    bad = settings.model_copy(update={"docker_host": "http://localhost:2375"})

    with session_scope(settings) as session, pytest.raises(InputError) as caught:
        service.ensure_local(session, bad)

    assert caught.value.details == {"field": "SLIPWAY_DOCKER_HOST"}
    assert "unix:///" in caught.value.message and "tcp://host:port" in caught.value.message


def test_the_builtin_endpoint_cannot_be_deleted_or_created_again(client, auth, settings):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    deleted = client.delete(f"{ENDPOINTS}/local", headers=auth["admin"])
    created = client.post(
        ENDPOINTS, json={"name": "local", "url": LOCAL_URL}, headers=auth["admin"]
    )

    assert "PATCH" in assert_error(deleted, 409, "endpoint_builtin")["message"]
    assert_error(created, 409, "endpoint_exists")
    assert endpoint_state(settings) == before


# --- create, read, update, delete -----------------------------------------------------------------


def test_create_read_update_and_delete_a_plain_endpoint(docker_engine, client, auth, settings):
    created = client.post(
        ENDPOINTS,
        json={
            "name": "build-box",
            "url": LOCAL_URL,
            "labels": {"team": "web"},
            "description": "the builders",
        },
        headers=auth["admin"],
    )

    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["name"] == "build-box"
    assert endpoint["labels"] == {"team": "web"}
    assert endpoint["description"] == "the builders"
    assert endpoint["has_tls"] is False and endpoint["is_builtin"] is False
    assert endpoint["revision"] == 1
    assert endpoint["engine"]["version"] == engine_version()  # pinged when saved
    assert client.get(f"{ENDPOINTS}/build-box", headers=auth["viewer"]).json() == endpoint
    assert names(client, auth["viewer"]) == ["build-box", "local"]

    relabeled = client.patch(
        f"{ENDPOINTS}/build-box",
        data={"labels": json.dumps({"team": "data", "tier": "2"})},
        headers=auth["admin"],
    )
    described = client.patch(
        f"{ENDPOINTS}/build-box", json={"description": "now data's"}, headers=auth["admin"]
    )

    assert relabeled.status_code == 200, relabeled.text
    assert relabeled.json()["labels"] == {"team": "data", "tier": "2"}
    assert relabeled.json()["revision"] == 2
    assert described.json()["revision"] == 3
    assert described.json()["labels"] == {"team": "data", "tier": "2"}
    revisions = client.get(f"{ENDPOINTS}/build-box/revisions", headers=auth["viewer"]).json()
    assert [(r["revision"], r["changes"], r["actor"]) for r in revisions["items"]] == [
        (3, ["description"], "admin"),
        (2, ["labels"], "admin"),
        (1, ["created"], "admin"),
    ]
    assert revisions["items"][2]["labels"] == {"team": "web"}  # history keeps the old values

    deleted = client.delete(f"{ENDPOINTS}/build-box", headers=auth["admin"])

    assert deleted.status_code == 204, deleted.text
    assert_error(
        client.get(f"{ENDPOINTS}/build-box", headers=auth["viewer"]), 404, "endpoint_not_found"
    )
    assert names(client, auth["viewer"]) == ["local"]
    # Its revisions went with it; only local's is left.
    assert [row[1:] for row in endpoint_state(settings)["revisions"]] == [(1, LOCAL_URL)]


def test_multipart_form_creates_an_endpoint_too(docker_engine, client, auth):
    response = client.post(
        ENDPOINTS,
        data={
            "name": "form-made",
            "url": LOCAL_URL,
            "labels": '{"made": "by form"}',
            "description": "",
        },
        files={"unused": ("", b"", "application/octet-stream")},
        headers=auth["admin"],
    )

    assert_invalid(response, "unused")  # an unknown field is refused, naming it

    response = client.post(
        ENDPOINTS,
        data={"name": "form-made", "url": LOCAL_URL, "labels": '{"made": "by form"}'},
        files={"ca": ("", b"", "application/octet-stream")},  # a file input left empty
        headers=auth["admin"],
    )

    assert response.status_code == 201, response.text
    assert response.json()["labels"] == {"made": "by form"}
    assert response.json()["has_tls"] is False


def test_an_update_that_changes_nothing_makes_no_revision(docker_engine, client, auth):
    client.post(ENDPOINTS, json={"name": "same", "url": LOCAL_URL}, headers=auth["admin"])

    response = client.patch(
        f"{ENDPOINTS}/same", json={"url": LOCAL_URL, "labels": {}}, headers=auth["admin"]
    )

    assert response.status_code == 200, response.text
    assert response.json()["revision"] == 1
    revisions = client.get(f"{ENDPOINTS}/same/revisions", headers=auth["viewer"]).json()
    assert len(revisions["items"]) == 1


def test_lists_are_paged_by_cursor(docker_engine, client, auth):
    for name in ("a-one", "b-two", "c-three"):
        response = client.post(
            ENDPOINTS, json={"name": name, "url": LOCAL_URL}, headers=auth["admin"]
        )
        assert response.status_code == 201, response.text
    for index in range(3):
        client.patch(f"{ENDPOINTS}/a-one", json={"description": f"v{index}"}, headers=auth["admin"])

    first = client.get(ENDPOINTS, params={"limit": 2}, headers=auth["viewer"]).json()
    second = client.get(
        ENDPOINTS, params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth["viewer"]
    ).json()
    revisions = client.get(
        f"{ENDPOINTS}/a-one/revisions", params={"limit": 3}, headers=auth["viewer"]
    ).json()
    older = client.get(
        f"{ENDPOINTS}/a-one/revisions",
        params={"limit": 3, "cursor": revisions["next_cursor"]},
        headers=auth["viewer"],
    ).json()

    assert [i["name"] for i in first["items"]] == ["a-one", "b-two"]
    assert [i["name"] for i in second["items"]] == ["c-three", "local"]
    assert second["next_cursor"] is None
    assert [i["revision"] for i in revisions["items"]] == [4, 3, 2]
    assert [i["revision"] for i in older["items"]] == [1]
    assert older["next_cursor"] is None
    assert_invalid(
        client.get(ENDPOINTS, params={"cursor": "%%%"}, headers=auth["viewer"]), "cursor"
    )
    assert_invalid(
        client.get(
            f"{ENDPOINTS}/a-one/revisions",
            params={"cursor": first["next_cursor"]},
            headers=auth["viewer"],
        ),
        "cursor",
    )


# --- an engine that does not answer ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["tcp://127.0.0.1:{port}", "unix:///tmp/slipway-no-such-engine.sock"],
    ids=["tcp", "unix"],
)
def test_an_unreachable_engine_is_refused_and_nothing_is_saved(client, auth, settings, url):
    names(client, auth["viewer"])
    before = endpoint_state(settings)
    url = url.format(port=free_port())

    response = client.post(ENDPOINTS, json={"name": "away", "url": url}, headers=auth["admin"])

    error = assert_error(response, 503, "endpoint_unreachable")
    assert url in error["message"]
    assert endpoint_state(settings) == before
    assert names(client, auth["viewer"]) == ["local"]


def test_moving_an_endpoint_to_an_unreachable_address_keeps_the_old_one(
    docker_engine, client, auth, settings
):
    client.post(ENDPOINTS, json={"name": "mover", "url": LOCAL_URL}, headers=auth["admin"])
    before = endpoint_state(settings)
    away = f"tcp://127.0.0.1:{free_port()}"

    response = client.patch(
        f"{ENDPOINTS}/mover", json={"url": away, "description": "moved"}, headers=auth["admin"]
    )

    assert_error(response, 503, "endpoint_unreachable")
    assert endpoint_state(settings) == before
    shown = client.get(f"{ENDPOINTS}/mover", headers=auth["viewer"]).json()
    assert (shown["url"], shown["revision"], shown["description"]) == (LOCAL_URL, 1, "")


def test_a_test_of_an_engine_that_went_away_is_reported_and_recorded(
    docker_engine, client, auth, settings
):
    client.post(ENDPOINTS, json={"name": "goner", "url": LOCAL_URL}, headers=auth["admin"])
    away = f"tcp://127.0.0.1:{free_port()}"
    with session_scope(settings) as session:  # the engine moves away behind slipway's back
        service.get_or_raise(session, "goner").url = away

    response = client.post(f"{ENDPOINTS}/goner/test", headers=auth["operator"])

    error = assert_error(response, 503, "endpoint_unreachable")
    shown = client.get(f"{ENDPOINTS}/goner", headers=auth["viewer"]).json()
    assert shown["last_error"] == {"code": "endpoint_unreachable", "message": error["message"]}
    assert shown["last_checked_at"] is not None
    assert shown["revision"] == 1


def test_check_endpoints_pings_every_endpoint(docker_engine, client, auth, settings):
    client.post(ENDPOINTS, json={"name": "fine", "url": LOCAL_URL}, headers=auth["admin"])
    client.post(ENDPOINTS, json={"name": "goner", "url": LOCAL_URL}, headers=auth["admin"])
    with session_scope(settings) as session:
        service.get_or_raise(session, "goner").url = f"tcp://127.0.0.1:{free_port()}"

    with session_scope(settings) as session:
        results = service.check_endpoints(session, settings)

    by_name = {result["name"]: result for result in results}
    assert set(by_name) == {
        "docker_endpoint:fine",
        "docker_endpoint:goner",
        "docker_endpoint:local",
    }
    assert by_name["docker_endpoint:fine"]["ok"] is True
    assert by_name["docker_endpoint:fine"]["details"]["version"] == engine_version()
    assert by_name["docker_endpoint:goner"]["ok"] is False
    assert by_name["docker_endpoint:goner"]["details"]["code"] == "endpoint_unreachable"
    shown = client.get(f"{ENDPOINTS}/goner", headers=auth["viewer"]).json()
    assert shown["last_error"]["code"] == "endpoint_unreachable"


# --- refusals -------------------------------------------------------------------------------------

BAD_CREATES = {
    "name-uppercase": ({"name": "Build", "url": LOCAL_URL}, "name"),
    "name-leading-dash": ({"name": "-build", "url": LOCAL_URL}, "name"),
    "name-too-long": ({"name": "a" * 64, "url": LOCAL_URL}, "name"),
    "name-dot": ({"name": "a.b", "url": LOCAL_URL}, "name"),
    "url-http": ({"name": "x", "url": "http://10.0.0.5:2375"}, "url"),
    "url-ssh": ({"name": "x", "url": "ssh://root@10.0.0.5"}, "url"),
    "url-no-port": ({"name": "x", "url": "tcp://10.0.0.5"}, "url"),
    "url-port-zero": ({"name": "x", "url": "tcp://10.0.0.5:0"}, "url"),
    "url-bad-port": ({"name": "x", "url": "tcp://10.0.0.5:99999"}, "url"),
    "url-path": ({"name": "x", "url": "tcp://10.0.0.5:2376/v1"}, "url"),
    "url-user": ({"name": "x", "url": "tcp://me@10.0.0.5:2376"}, "url"),
    "url-relative-socket": ({"name": "x", "url": "unix://docker.sock"}, "url"),
    "url-empty": ({"name": "x", "url": ""}, "url"),
    "url-missing": ({"name": "x"}, "url"),
    "labels-not-strings": ({"name": "x", "url": LOCAL_URL, "labels": {"n": 5}}, "labels.n"),
    "labels-bad-key": ({"name": "x", "url": LOCAL_URL, "labels": {"a b": "c"}}, "labels"),
    "description-long": ({"name": "x", "url": LOCAL_URL, "description": "d" * 3000}, "description"),
    "unknown-field": ({"name": "x", "url": LOCAL_URL, "tls": True}, "tls"),
}


@pytest.mark.parametrize(("body", "field"), BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_bad_input_is_refused_naming_the_field_and_nothing_changes(
    client, auth, settings, body, field
):
    names(client, auth["viewer"])
    before = endpoint_state(settings)

    as_json = client.post(ENDPOINTS, json=body, headers=auth["admin"])
    form = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in body.items()}
    as_form = client.post(ENDPOINTS, data=form, headers=auth["admin"])

    error = assert_invalid(as_json, field)
    assert_invalid(as_form, field)
    assert endpoint_state(settings) == before
    if field == "url":
        assert "tcp://host:port" in error["message"] or "Field required" in error["message"]


BAD_BODIES = {
    "not-json": (
        {"content": b"{nope", "headers": {"content-type": "application/json"}},
        "body",
        "invalid_input",
    ),
    "json-array": ({"json": [1, 2]}, "body", "invalid_input"),
    "plain-text": (
        {"content": b"name=x", "headers": {"content-type": "text/plain"}},
        "body",
        "unsupported_media_type",
    ),
    "labels-not-json": (
        {"data": {"name": "x", "url": LOCAL_URL, "labels": "{team"}},
        "labels",
        "invalid_input",
    ),
    "text-as-file": (
        {"files": {"name": ("name.txt", b"x")}, "data": {"url": LOCAL_URL}},
        "name",
        "invalid_input",
    ),
    "name-twice": ({"data": {"name": ["x", "y"], "url": LOCAL_URL}}, "name", "invalid_input"),
    "huge": (
        {
            "content": b"x",
            "headers": {"content-type": "application/json", "content-length": str(50 << 20)},
        },
        "body",
        "upload_too_large",
    ),
}


@pytest.mark.parametrize(
    ("request_args", "field", "code"), BAD_BODIES.values(), ids=BAD_BODIES.keys()
)
def test_malformed_bodies_are_refused_and_nothing_changes(
    client, auth, settings, request_args, field, code
):
    names(client, auth["viewer"])
    before = endpoint_state(settings)
    args = {**request_args, "headers": {**request_args.get("headers", {}), **auth["admin"]}}

    response = client.post(ENDPOINTS, **args)

    assert_invalid(response, field, code)
    assert endpoint_state(settings) == before


def test_bad_updates_are_refused_and_nothing_changes(docker_engine, client, auth, settings):
    client.post(ENDPOINTS, json={"name": "keep", "url": LOCAL_URL}, headers=auth["admin"])
    before = endpoint_state(settings)

    cases = [
        ({"json": {"url": "https://10.0.0.5:2376"}}, "url"),
        ({"json": {"labels": {"x": ["y"]}}}, "labels.x"),
        ({"json": {"name": "renamed"}}, "name"),
        ({"data": {"labels": "[1"}}, "labels"),
        ({"json": {"remove_tls": "perhaps"}}, "remove_tls"),
    ]
    for args, field in cases:
        response = client.patch(f"{ENDPOINTS}/keep", headers=auth["admin"], **args)
        assert_invalid(response, field)

    assert endpoint_state(settings) == before


def test_a_taken_name_is_refused(docker_engine, client, auth, settings):
    client.post(ENDPOINTS, json={"name": "taken", "url": LOCAL_URL}, headers=auth["admin"])
    before = endpoint_state(settings)

    response = client.post(
        ENDPOINTS, json={"name": "taken", "url": "tcp://10.9.9.9:2376"}, headers=auth["admin"]
    )

    assert (
        "PATCH /api/v1/docker-endpoints/taken"
        in assert_error(response, 409, "endpoint_exists")["message"]
    )
    assert endpoint_state(settings) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("PATCH", "/nope"),
        ("DELETE", "/nope"),
        ("POST", "/nope/test"),
        ("GET", "/nope/revisions"),
    ],
)
def test_an_unknown_endpoint_is_404(client, auth, method, path):
    kwargs = {"json": {"description": "x"}} if method == "PATCH" else {}

    response = client.request(method, f"{ENDPOINTS}{path}", headers=auth["admin"], **kwargs)

    assert (
        "GET /api/v1/docker-endpoints"
        in assert_error(response, 404, "endpoint_not_found")["message"]
    )


# --- roles ----------------------------------------------------------------------------------------


def test_viewers_read_operators_test_and_only_admins_write(docker_engine, client, auth, settings):
    client.post(ENDPOINTS, json={"name": "shared", "url": LOCAL_URL}, headers=auth["admin"])
    before = endpoint_state(settings)
    writes = [
        ("POST", ENDPOINTS, {"json": {"name": "mine", "url": LOCAL_URL}}),
        ("PATCH", f"{ENDPOINTS}/shared", {"json": {"description": "mine now"}}),
        ("DELETE", f"{ENDPOINTS}/shared", {}),
    ]

    for role in ("viewer", "operator"):
        for method, url, kwargs in writes:
            response = client.request(method, url, headers=auth[role], **kwargs)
            error = assert_error(response, 403, "forbidden")
            assert error["details"] == {"required_role": "admin", "role": role}
    refused_test = client.post(f"{ENDPOINTS}/shared/test", headers=auth["viewer"])
    anonymous = client.get(ENDPOINTS)

    assert_error(refused_test, 403, "forbidden")
    assert_error(anonymous, 401, "unauthenticated")
    assert endpoint_state(settings) == before
    for url in (ENDPOINTS, f"{ENDPOINTS}/shared", f"{ENDPOINTS}/shared/revisions"):
        assert client.get(url, headers=auth["viewer"]).status_code == 200
    assert client.post(f"{ENDPOINTS}/shared/test", headers=auth["operator"]).status_code == 200
