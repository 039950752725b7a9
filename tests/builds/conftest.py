"""Fixtures of the build tests: the Debian base image, a local apt repository and pip index.

    debian_image  "local/debian:bookworm-slipway" (debootstrap minbase + python3-venv, made once)
    apt_repo      Served: a flat repository on http://127.0.0.1:PORT/ with APT_PACKAGE
                  (/usr/bin/slipway-hello prints "hello from apt"); support.apt_profile(url)
    pip_index     Served: PEP 503 index at <url>/simple/ with PIP_PACKAGE (module slipway_greeting,
                  GREETING = "hello from pip") and a stand-in `jupyterlab`
    docker_client a docker.DockerClient of the local engine

Each `Served` records the paths requested from it, to show a build really used it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.api.fixtures import cheap_hashes
from tests.builds import support

__all__ = ["cheap_hashes"]


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    problem = support.debian_image_problem()
    if problem:
        pytest.skip(problem)
    return docker.from_env()


@pytest.fixture(scope="session")
def debian_image(docker_client: docker.DockerClient) -> str:
    return support.ensure_debian_image()


@pytest.fixture(scope="session")
def apt_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.Served]:
    root: Path = tmp_path_factory.mktemp("apt-repo")
    support.build_deb(
        root,
        name=support.APT_PACKAGE,
        version="1.0",
        command=support.APT_COMMAND,
        output=support.APT_OUTPUT,
    )
    support.write_apt_repository(root)
    served = support.serve(root)
    yield served
    served.close()


@pytest.fixture(scope="session")
def pip_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[support.Served]:
    work = tmp_path_factory.mktemp("wheels")
    wheels = [
        support.build_wheel(
            work,
            name=support.PIP_PACKAGE,
            version="1.0",
            module=support.PIP_MODULE,
            source=f'GREETING = "{support.PIP_OUTPUT}"\n',
        ),
        # JupyterLab is not reachable here: a stand-in of that name shows it gets installed.
        support.build_wheel(
            work,
            name="jupyterlab",
            version="4.0.0",
            module="jupyterlab",
            source='__version__ = "4.0.0+slipway.stand.in"\n',
        ),
    ]
    root = tmp_path_factory.mktemp("pip-index")
    support.write_simple_index(root, wheels)
    served = support.serve(root)
    yield served
    served.close()
