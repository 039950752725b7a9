"""Generated Dockerfiles built for real on the local engine, from a local apt repo and pip index.

Marked slow: each test builds images (tens of seconds the first time, the base image once).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest
from argon2 import PasswordHasher

from slipway.builds import dockerfile, mirrors
from slipway.builds.fastbuild_secrets import sha512_crypt
from slipway.builds.spec import parse_build_request
from slipway.core.db import session_scope
from tests.builds import support

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["sqlite"], indirect=True)]

SALT_KEY = b"a key of this installation"


@pytest.fixture
def tags(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Image tags a test builds; removed after it."""
    made: list[str] = []
    yield made
    for tag in made:
        try:
            docker_client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass


def _tag(tags: list[str]) -> str:
    tag = f"slipway-test/build-{uuid.uuid4().hex[:10]}:1"
    tags.append(tag)
    return tag


def _spec(debian_image: str, pip_index: support.Served, **extra: object) -> dict:
    return {
        "base_image": debian_image,
        "target_image": "registry.example.com/tests/hello:1",
        "task_name": "build-test-1",
        "maintainer": "slipway tests",
        "apt": {
            "mirror": {"type": "local", "file_name": "bookworm-test.list"},
            "packages": [support.APT_PACKAGE],
        },
        "pip": {"index_url": f"{pip_index.url}/simple/", "packages": [support.PIP_PACKAGE]},
        **extra,
    }


def _render(settings, body: dict, profile: str) -> dockerfile.BuildContext:
    """The path of a build request: parse, the mirror profile saved and checked, render."""
    spec = parse_build_request(body, fastbuild_key=None, fastbuild_iv=None)
    with session_scope(settings) as session:
        mirrors.update_profile(
            session, kind="local", file_name="bookworm-test.list", content=profile, actor="test"
        )
        mirror = mirrors.check_mirrors(session, spec)
    return dockerfile.render(spec, mirror=mirror, salt_key=SALT_KEY)


def test_a_spec_with_a_mirror_profile_apt_and_pip_packages_builds_and_runs_them(
    settings, docker_client, debian_image, apt_repo, pip_index, tags
):
    body = _spec(debian_image, pip_index)
    context = _render(settings, body, support.apt_profile(apt_repo.url))
    apt_repo.requested.clear()
    pip_index.requested.clear()

    built = support.build(docker_client, context, _tag(tags))

    # apt read only the profile's repository (Debian's own list was replaced), pip our index.
    assert "/./Packages" in apt_repo.requested, apt_repo.requested
    assert f"/simple/{support.PIP_PACKAGE}/" in pip_index.requested, pip_index.requested
    assert "deb.debian.org" not in built.text
    hello = support.run(docker_client, built.image_id, [support.APT_COMMAND])
    assert hello.strip() == support.APT_OUTPUT
    greeting = support.run(
        docker_client,
        built.image_id,
        ["python", "-c", f"import {support.PIP_MODULE} as m, sys; print(m.GREETING, sys.prefix)"],
    )
    assert greeting.strip() == f"{support.PIP_OUTPUT} /opt/venv"
    sources = support.run(
        docker_client,
        built.image_id,
        ["sh", "-c", "cat /etc/apt/sources.list; ls -A /etc/apt/sources.list.d"],
    )
    assert sources == support.apt_profile(apt_repo.url)
    labels = docker_client.images.get(built.image_id).labels
    assert labels["slipway.task"] == "build-test-1"
    assert labels["maintainer"] == "slipway tests"
    assert len(labels["slipway.spec-hash"]) == 64

    # The same spec renders the same bytes, and the rebuild takes every layer from the cache.
    again = _render(settings, body, support.apt_profile(apt_repo.url))
    assert again == context
    rebuilt = support.build(docker_client, again, _tag(tags))
    assert rebuilt.image_id == built.image_id
    instructions = [
        line for line in context.dockerfile.splitlines() if line and line[0] not in " #"
    ]
    assert rebuilt.steps == len(instructions) == 8, context.dockerfile
    assert rebuilt.cached_steps == rebuilt.steps - 1, rebuilt.text  # all but FROM


def test_ssh_and_jupyter_secrets_reach_the_image_only_as_hashes(
    settings, docker_client, debian_image, apt_repo, pip_index, tags
):
    ssh_password = f"ssh-{uuid.uuid4().hex}"
    jupyter_password = f"lab-{uuid.uuid4().hex}"
    body = _spec(
        debian_image,
        pip_index,
        secrets={"web_ssh": ssh_password, "jupyter_lab": jupyter_password},
    )
    context = _render(settings, body, support.apt_profile(apt_repo.url, with_debian=True))

    built = support.build(docker_client, context, _tag(tags))

    history = docker_client.api.history(built.image_id)
    for password in (ssh_password, jupyter_password):
        assert password not in context.dockerfile
        assert not any(password.encode() in data for data in context.files.values())
        assert password not in built.text
        assert not any(password in (layer.get("CreatedBy") or "") for layer in history)
        assert password not in str(docker_client.images.get(built.image_id).attrs)
    found = support.run(
        docker_client,
        built.image_id,
        ["sh", "-c", f"grep -rlsF -e {ssh_password} -e {jupyter_password} "
         "/etc /root /opt /run /var /tmp /usr/local || echo none"],
    )  # fmt: skip
    assert found.strip() == "none"

    # Root's shadow entry is a sha512-crypt hash of the password, checked by the image's own libc.
    shadow = support.run(docker_client, built.image_id, ["getent", "shadow", "root"])
    root_hash = shadow.split(":")[1]
    assert root_hash.startswith("$6$rounds=")
    _, _, rounds, salt, _ = root_hash.split("$")
    assert sha512_crypt(ssh_password, salt, rounds=int(rounds.split("=")[1])) == root_hash
    verified = support.run(
        docker_client,
        built.image_id,
        ["python3", "-W", "ignore", "-c",
         "import crypt, os; h = os.environ['H']; print(crypt.crypt(os.environ['P'], h) == h)"],
        environment={"H": root_hash, "P": ssh_password},
    )  # fmt: skip
    assert verified.strip() == "True"
    sshd = support.run(
        docker_client, built.image_id, ["sh", "-c", "/usr/sbin/sshd -t && /usr/sbin/sshd -T"]
    )
    assert "permitrootlogin yes" in sshd
    assert "passwordauthentication yes" in sshd

    # JupyterLab (a stand-in here) is installed, and its config holds an argon2 hash only.
    config = support.run(
        docker_client, built.image_id, ["cat", "/etc/jupyter/jupyter_server_config.py"]
    )
    line = next(x for x in config.splitlines() if "PasswordIdentityProvider" in x)
    jupyter_hash = line.split("'")[1]
    assert jupyter_hash.startswith("argon2:$argon2id$")
    assert PasswordHasher().verify(jupyter_hash.removeprefix("argon2:"), jupyter_password)
    version = support.run(
        docker_client,
        built.image_id,
        ["python", "-c", "import jupyterlab; print(jupyterlab.__version__)"],
    )
    assert version.strip() == "4.0.0+slipway.stand.in"
