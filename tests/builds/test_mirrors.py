"""Mirror profiles: the built-in library, the API (with revisions and overrides), and a build
request naming an unknown profile."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from slipway.builds import mirrors
from slipway.builds.spec import parse_build_request
from slipway.core.errors import InputError
from tests.api.helpers import assert_error, assert_invalid
from tests.builds.support import FASTBUILD_IV, FASTBUILD_KEY, SEED_REQUEST
from tests.conftest import bearer

URL = "/api/v1/mirror-profiles"
TYPES = ("ali", "163", "qinghua", "ustc", "official")
FILES = (
    [f"ubuntu-{v}.list" for v in ("16.04", "18.04", "20.04", "22.04", "24.04")]
    + [f"debian-{v}.list" for v in ("10", "11", "12")]
    + ["centos-7.repo"]
)
APT = "deb [trusted=yes] http://10.0.0.9:8080/debian/ bookworm main contrib\n"
YUM = "[base]\nname=corp\nbaseurl=http://10.0.0.9/centos/7/os/$basearch/\ngpgcheck=0\n"
SOURCE = "dockerfile_json.image_installer_config.package_manager_installer_config.source"


@pytest.fixture
def auth(cheap_hashes: None, tokens: dict[str, str]) -> dict[str, dict[str, str]]:
    return {role: bearer(token) for role, token in tokens.items()}


# --- the built-in library -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TYPES)
def test_each_mirror_ships_every_release_and_each_file_passes_the_content_check(kind: str) -> None:
    library = mirrors.builtin_profiles()

    for file_name in FILES:
        profile = library[(kind, file_name)]
        assert mirrors.check_content(profile.manager, profile.content) == profile.content
        assert profile.manager == ("yum" if file_name.endswith(".repo") else "apt")


def test_the_builtin_profiles_point_at_their_mirrors() -> None:
    library = mirrors.builtin_profiles()

    assert (
        "deb http://mirrors.aliyun.com/ubuntu/ bionic main"
        in library[("ali", "ubuntu-18.04.list")].content
    )
    assert (
        "http://mirrors.tuna.tsinghua.edu.cn/debian-security/ bookworm-security"
        in library[("qinghua", "debian-12.list")].content
    )
    assert (
        "baseurl=http://vault.centos.org/7.9.2009/os/$basearch/"
        in library[("official", "centos-7.repo")].content
    )
    assert (
        "[check-valid-until=no] http://archive.debian.org/debian/ buster"
        in library[("official", "debian-10.list")].content
    )


# --- content checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manager", "content", "words"),
    [
        ("apt", "", "1 byte to 64 KiB"),
        ("apt", "# only a comment\n", "no deb line"),
        ("apt", "deb ftp://mirror.example.com/debian bookworm main\n", "line 1"),
        ("apt", "deb http://m.example.com/debian bookworm main\nrm -rf /\n", "line 2"),
        ("apt", "deb http://m.example.com/debian $(id) main\n", "line 1"),
        ("apt", "deb [trusted=yes;id] http://m.example.com/debian bookworm\n", "line 1"),
        ("apt", "deb http://user:pw@m.example.com/debian bookworm main\n", "line 1"),
        ("yum", "baseurl=http://x/\n", "not a yum .repo"),
        ("yum", "# nothing\n", "no [section]"),
        ("yum", "[base]\nname=x\n", "needs a baseurl"),
        ("yum", "[base]\nbaseurl=file:///mnt/repo\n", "needs a baseurl"),
        ("yum", "[base]\nbaseurl=http://x/\n[base]\nbaseurl=http://y/\n", "not a yum .repo"),
    ],
)
def test_profile_content_that_is_not_a_sources_list_or_repo_file_is_refused(
    manager: str, content: str, words: str
) -> None:
    with pytest.raises(InputError) as caught:
        mirrors.check_content(manager, content)

    assert words in caught.value.message
    assert caught.value.details["field"] == "content"


def test_apt_options_flat_repositories_and_crlf_are_accepted() -> None:
    content = (
        "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://m.example.com/ubuntu/ "
        "jammy main\r\ndeb-src http://m.example.com/ubuntu jammy main\r\n"
        "deb [trusted=yes] http://127.0.0.1:8000/ ./"
    )

    checked = mirrors.check_content("apt", content)

    assert "\r" not in checked and checked.endswith("./\n")


# --- the API --------------------------------------------------------------------------------------


def test_viewers_list_the_builtin_profiles_filtered_and_paged(client, auth) -> None:
    answer = client.get(URL, headers=auth["viewer"])
    assert answer.status_code == 200
    items = answer.json()["items"]
    assert len(items) == len(TYPES) * len(FILES)
    assert {item["source"] for item in items} == {"built-in"}
    assert items == sorted(items, key=lambda item: (item["type"], item["file_name"]))

    yum = client.get(URL, params={"manager": "yum"}, headers=auth["viewer"]).json()["items"]
    assert [(i["type"], i["file_name"]) for i in yum] == sorted((t, "centos-7.repo") for t in TYPES)

    first = client.get(URL, params={"type": "ali", "limit": 5}, headers=auth["viewer"]).json()
    rest = client.get(
        URL, params={"type": "ali", "cursor": first["next_cursor"]}, headers=auth["viewer"]
    ).json()
    names = [i["file_name"] for i in first["items"] + rest["items"]]
    assert names == sorted(FILES) and rest["next_cursor"] is None


def test_the_seed_requests_profile_is_there_out_of_the_box(client, auth) -> None:
    answer = client.get(f"{URL}/ali/ubuntu-18.04.list", headers=auth["viewer"])

    assert answer.status_code == 200
    body = answer.json()
    assert body["manager"] == "apt" and body["source"] == "built-in" and body["revision"] == 0
    assert client.get(f"{URL}/ali/ubuntu-18.04.list/revisions", headers=auth["viewer"]).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_unknown_profiles_are_404s_naming_the_part_that_is_unknown(client, auth) -> None:
    error = assert_error(
        client.get(f"{URL}/nowhere/ubuntu-18.04.list", headers=auth["viewer"]),
        404,
        "mirror_profile_not_found",
    )
    assert error["details"]["field"] == "type"
    assert "ali" in error["message"]
    error = assert_error(
        client.get(f"{URL}/ali/ubuntu-99.04.list", headers=auth["viewer"]),
        404,
        "mirror_profile_not_found",
    )
    assert error["details"]["field"] == "file_name"
    assert "ubuntu-18.04.list" in error["message"]


def test_admins_add_change_and_delete_a_profile_with_revisions(client, auth) -> None:
    created = client.post(
        URL,
        json={"type": "corp", "file_name": "debian-12.list", "content": APT, "description": "lab"},
        headers=auth["admin"],
    )
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "saved" and created.json()["revision"] == 1

    again = client.post(
        URL, json={"type": "corp", "file_name": "debian-12.list", "content": APT},
        headers=auth["admin"],
    )  # fmt: skip
    assert_error(again, 409, "mirror_profile_exists")

    changed = APT.replace("10.0.0.9", "10.0.0.10")
    put = client.put(f"{URL}/corp/debian-12.list", json={"content": changed}, headers=auth["admin"])
    assert put.status_code == 200 and put.json()["revision"] == 2
    assert put.json()["description"] == "lab"  # left out: kept
    same = client.put(
        f"{URL}/corp/debian-12.list", json={"content": changed}, headers=auth["admin"]
    )
    assert same.json()["revision"] == 2  # nothing changed, no revision

    current = client.get(f"{URL}/corp/debian-12.list", headers=auth["viewer"]).json()
    assert current["content"] == changed
    revisions = client.get(f"{URL}/corp/debian-12.list/revisions", headers=auth["viewer"]).json()
    assert [(r["revision"], r["changes"], r["actor"]) for r in revisions["items"]] == [
        (2, ["content"], "admin"),
        (1, ["created"], "admin"),
    ]
    assert revisions["items"][1]["content"] == APT

    deleted = client.delete(f"{URL}/corp/debian-12.list", headers=auth["admin"])
    assert deleted.status_code == 204 and not deleted.content
    gone = client.get(f"{URL}/corp/debian-12.list", headers=auth["viewer"])
    assert_error(gone, 404, "mirror_profile_not_found")


def test_a_put_on_a_builtin_profile_overrides_it_until_deleted(client, auth) -> None:
    path = f"{URL}/ali/ubuntu-18.04.list"
    builtin = client.get(path, headers=auth["viewer"]).json()["content"]
    content = "deb http://mirror.corp.example/ubuntu/ bionic main\n"

    put = client.put(path, json={"content": content}, headers=auth["admin"])

    assert put.status_code == 200
    assert put.json()["source"] == "saved" and put.json()["overrides_builtin"] is True
    assert client.get(path, headers=auth["viewer"]).json()["content"] == content
    revisions = client.get(f"{path}/revisions", headers=auth["viewer"]).json()["items"]
    assert revisions[0]["changes"] == ["created", "overrides built-in"]

    assert client.delete(path, headers=auth["admin"]).status_code == 204
    restored = client.get(path, headers=auth["viewer"]).json()
    assert restored["content"] == builtin and restored["source"] == "built-in"
    assert_error(client.delete(path, headers=auth["admin"]), 409, "mirror_profile_builtin")
    posted = client.post(
        URL, json={"type": "ali", "file_name": "ubuntu-18.04.list", "content": content},
        headers=auth["admin"],
    )  # fmt: skip
    assert_error(posted, 409, "mirror_profile_exists")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "Corp", "file_name": "debian-12.list", "content": APT}, "type"),
        ({"type": "corp", "file_name": "debian-12.txt", "content": APT}, "file_name"),
        ({"type": "corp", "file_name": "../debian.list", "content": APT}, "file_name"),
        ({"type": "corp", "file_name": "debian-12.list", "content": YUM}, "content"),
        ({"type": "corp", "file_name": "centos-7.repo", "content": APT}, "content"),
        ({"type": "corp", "file_name": "debian-12.list"}, "content"),
        ({"type": "corp", "file_name": "x.list", "content": APT, "extra": 1}, "extra"),
    ],
)
def test_bad_profiles_are_refused_naming_the_field(client, auth, body, field) -> None:
    assert_invalid(client.post(URL, json=body, headers=auth["admin"]), field)
    assert client.get(URL, params={"type": "corp"}, headers=auth["viewer"]).json()["items"] == []


def test_a_yum_profile_is_saved_and_read_back(client, auth) -> None:
    created = client.post(
        URL, json={"type": "corp", "file_name": "centos-7.repo", "content": YUM},
        headers=auth["admin"],
    )  # fmt: skip

    assert created.status_code == 201, created.text
    assert created.json()["manager"] == "yum"


# --- build requests -------------------------------------------------------------------------------


def _seed(**source: str) -> dict[str, Any]:
    body = copy.deepcopy(SEED_REQUEST)
    installers = body["dockerfile_json"]["image_installer_config"]
    installers["package_manager_installer_config"]["source"].update(source)
    return body


def _parse(body: dict[str, Any]):
    return parse_build_request(body, fastbuild_key=FASTBUILD_KEY, fastbuild_iv=FASTBUILD_IV)


def test_the_seed_request_resolves_its_builtin_profile(session) -> None:
    mirror = mirrors.check_mirrors(session, _parse(_seed()))

    assert mirror is not None
    assert (mirror.type, mirror.file_name, mirror.manager) == ("ali", "ubuntu-18.04.list", "apt")


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"type": "nowhere"}, f"{SOURCE}.type"),
        ({"file_name": "ubuntu-99.04.list"}, f"{SOURCE}.file_name"),
    ],
)
def test_an_unknown_profile_in_a_fastbuild_request_names_its_field(session, source, field) -> None:
    with pytest.raises(InputError) as caught:
        mirrors.check_mirrors(session, _parse(_seed(**source)))

    assert caught.value.details["field"] == field
    assert caught.value.code == "unknown_mirror_profile"
    assert caught.value.message.startswith(field)


def test_an_unknown_profile_in_a_native_spec_names_its_field(session) -> None:
    spec = _parse({
        "base_image": "debian:12", "target_image": "r.example.com/a/b:1", "task_name": "t",
        "yum": {"mirror": {"type": "ali", "file_name": "rocky-9.repo"}},
    })  # fmt: skip

    with pytest.raises(InputError) as caught:
        mirrors.check_mirrors(session, spec)

    assert caught.value.details["field"] == "yum.mirror.file_name"
    assert "centos-7.repo" in caught.value.message


def test_a_build_uses_the_newest_revision_of_a_saved_profile(session) -> None:
    mirrors.create_profile(session, kind="corp", file_name="ubuntu-18.04.list", content=APT)
    newer = APT.replace("bookworm", "bionic")
    mirrors.update_profile(session, kind="corp", file_name="ubuntu-18.04.list", content=newer)
    session.commit()

    mirror = mirrors.check_mirrors(session, _parse(_seed(type="corp")))

    assert mirror is not None and mirror.content == newer and mirror.revision == 2


def test_a_spec_without_a_profile_needs_none(session) -> None:
    assert mirrors.check_mirrors(session, _parse(_seed(type="", file_name=""))) is None
