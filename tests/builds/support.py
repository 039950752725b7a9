"""Real things for build tests: a Debian base image, a local apt repository, a local pip index.

No public registry or mirror is reachable here, but Debian's package mirrors are: the base image
is made once with debootstrap and `docker import`. The apt repository and the pip index are
directories of packages built here, served on 127.0.0.1 by a threading HTTP server; builds run
with the host network (`network_mode="host"`), so a mirror profile pointing at them is used for
real by apt and pip inside the build.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound

from slipway.builds.dockerfile import BuildContext

DEBIAN_IMAGE = "local/debian:bookworm-slipway"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# python3-venv: pip packages go into a venv, and Debian splits ensurepip out of python3.
DEBOOTSTRAP_PACKAGES = "python3,python3-venv"
LOCK_FILE = Path(tempfile.gettempdir()) / "slipway-debian-image.lock"

APT_PACKAGE = "slipway-hello"
APT_COMMAND = "slipway-hello"
APT_OUTPUT = "hello from apt"
PIP_PACKAGE = "slipway-greeting"
PIP_MODULE = "slipway_greeting"
PIP_OUTPUT = "hello from pip"

# FastBuild's own sample build request (its refactoring notes), as its clients send it. Its
# secrets are the empty string under FastBuild's [aes] key and IV below: features off.
FASTBUILD_KEY = b"c7e71f37dda040fd"
FASTBUILD_IV = b"0000000000000000"
SEED_REQUEST: dict[str, Any] = {
    "webSSHSecret": "qkrhxQmWOe5kvpJpplvTuQ==",
    "jupyterLabSecret": "qkrhxQmWOe5kvpJpplvTuQ==",
    "task_data": {
        "task_name": "10.101.12.128-songquanheng@zhejianglab.com-1714116639",
        "target_image_name": "10.101.12.128/songquanheng-zhejianglab.com/ubuntu:sqh-18.04",
        "callback_url": "http://alkaidos.cn/api/app/dros-ic-platform/harbor/image/callback",
    },
    "dockerfile_json": {
        "base_image": "harbor.alkaidos.cn/base/ubuntu:18.04",
        "maintainer": "1597398607723978754",
        "image_installer_config": {
            "python_env": {
                "present": "",
                "update": False,
                "target": "",
                "install_loc": "/usr/local/dros/python",
            },
            "pip_installer_config": {
                "installer_name": "pip",
                "install": {"present": "", "update": False, "target": "", "install_loc": ""},
                "source": {"installer_name": "", "type": "", "file_name": ""},
                "software_list": [],
                "delimiter": "",
                "python_version": [],
            },
            "package_manager_installer_config": {
                "installer_name": "apt",
                "install": {
                    "present": "apt 1.6.14 (amd64)",
                    "update": False,
                    "target": "",
                    "install_loc": "",
                },
                "source": {"installer_name": "", "type": "ali", "file_name": "ubuntu-18.04.list"},
                "software_list": [],
                "delimiter": "",
                "python_version": [],
            },
            "conda_installer_config": {
                "installer_name": "conda",
                "install": {"present": "", "update": False, "target": "", "install_loc": ""},
                "source": {"installer_name": "", "type": "", "file_name": ""},
                "software_list": [],
                "delimiter": "",
                "python_version": [],
            },
            "webSSHSecret": "",
            "jupyterLabSecret": "",
        },
    },
}


# --- the base image -------------------------------------------------------------------------------


def debian_image_problem() -> str | None:
    """Why the Debian base image cannot be made here, or None."""
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        return f"no Docker engine answers ({exc}); run `make test`"
    with contextlib.suppress(ImageNotFound):
        client.images.get(DEBIAN_IMAGE)
        return None
    if os.geteuid() != 0:
        return f"{DEBIAN_IMAGE} is missing and debootstrap needs root to make it"
    if shutil.which("debootstrap") is None:
        return (
            f"{DEBIAN_IMAGE} is missing and debootstrap is not installed (apt install debootstrap)"
        )
    return None


def ensure_debian_image() -> str:
    """`local/debian:bookworm-slipway`, made once (minbase + python3-venv) and then reused."""
    client = docker.from_env()
    LOCK_FILE.touch(exist_ok=True)
    with open(LOCK_FILE) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions make it once
        with contextlib.suppress(ImageNotFound):
            client.images.get(DEBIAN_IMAGE)
            return DEBIAN_IMAGE
        with tempfile.TemporaryDirectory(prefix="slipway-debootstrap-") as work:
            root = Path(work) / "root"
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={DEBOOTSTRAP_PACKAGES}",
                 DEBIAN_SUITE, str(root), DEBIAN_MIRROR],
                check=True, capture_output=True, timeout=900,
            )  # fmt: skip
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(
                ["docker", "import", "-c", 'CMD ["/bin/bash"]', "-", DEBIAN_IMAGE],
                stdin=tar.stdout, check=True, capture_output=True, timeout=300,
            )  # fmt: skip
            assert tar.wait() == 0
    return DEBIAN_IMAGE


# --- serving a directory --------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        self.server.requested.append(self.path)  # type: ignore[attr-defined]


@dataclass
class Served:
    """A directory on http://127.0.0.1:PORT/, and the paths requested from it."""

    root: Path
    server: ThreadingHTTPServer
    requested: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(root: Path) -> Served:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    served = Served(root=root, server=server)
    server.requested = served.requested  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True, name="build-test-http").start()
    return served


# --- an apt repository ----------------------------------------------------------------------------


def build_deb(out: Path, *, name: str, version: str, command: str, output: str) -> Path:
    """A tiny architecture-independent .deb with /usr/bin/<command> printing `output`."""
    tree = out / f"{name}-tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: slipway tests <tests@example.invalid>\n"
        "Description: prints a greeting, for slipway's build tests\n"
    )
    script = tree / "usr" / "bin" / command
    script.parent.mkdir(parents=True)
    script.write_text(f"#!/bin/sh\necho '{output}'\n")
    script.chmod(0o755)
    deb = out / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    return deb


def write_apt_repository(root: Path) -> None:
    """A flat repository (`deb [trusted=yes] URL ./`): the .debs, Packages and an unsigned
    Release listing its checksum."""
    packages = subprocess.run(
        ["dpkg-scanpackages", "--multiversion", "."],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout
    (root / "Packages").write_bytes(packages)
    size = len(packages)
    (root / "Release").write_text(
        "Origin: slipway-tests\nLabel: slipway-tests\nDate: Thu, 01 Jan 2026 00:00:00 UTC\n"
        f"MD5Sum:\n {hashlib.md5(packages).hexdigest()} {size} Packages\n"
        f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {size} Packages\n"
    )


def apt_profile(url: str, *, with_debian: bool = False) -> str:
    """Mirror profile content for the local repository (and Debian's own, when asked)."""
    lines = ["# slipway build tests: the local repository", f"deb [trusted=yes] {url}/ ./"]
    if with_debian:
        lines.append(f"deb {DEBIAN_MIRROR} {DEBIAN_SUITE} main")
    return "\n".join(lines) + "\n"


# --- a pip index ----------------------------------------------------------------------------------


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def build_wheel(out: Path, *, name: str, version: str, module: str, source: str) -> Path:
    """A pure-Python wheel holding `module/__init__.py` = `source`."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": source.encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: slipway-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    wheel = out / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def write_simple_index(root: Path, wheels: list[Path]) -> None:
    """PEP 503: /simple/index.html and /simple/<project>/index.html linking /files/<wheel>."""
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[Path]] = {}
    for wheel in wheels:
        target = files / wheel.name
        shutil.copy(wheel, target)
        project = wheel.name.split("-")[0].replace("_", "-").lower()
        projects.setdefault(project, []).append(target)
    simple = root / "simple"
    simple.mkdir(exist_ok=True)
    links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
    (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    for project, paths in projects.items():
        (simple / project).mkdir(exist_ok=True)
        anchors = "".join(
            f'<a href="../../files/{p.name}#sha256={hashlib.sha256(p.read_bytes()).hexdigest()}">'
            f"{p.name}</a>\n"
            for p in paths
        )
        (simple / project / "index.html").write_text(
            f"<!DOCTYPE html><html><body>\n{anchors}</body></html>\n"
        )


# --- building -------------------------------------------------------------------------------------


@dataclass
class Built:
    image_id: str
    log: list[str]

    @property
    def text(self) -> str:
        return "".join(self.log)

    @property
    def steps(self) -> int:
        return sum(1 for line in self.log if line.startswith("Step "))

    @property
    def cached_steps(self) -> int:
        return sum(1 for line in self.log if "Using cache" in line)


def build(client: docker.DockerClient, context: BuildContext, tag: str) -> Built:
    """`docker build --network host` of a rendered context, as the build job does; the whole
    output is kept (an error in it fails the test with that output)."""
    log: list[str] = []
    image_id = None
    stream = client.api.build(
        fileobj=io.BytesIO(context.tar()),
        custom_context=True,
        tag=tag,
        network_mode="host",
        rm=True,
        forcerm=True,
        decode=True,
    )
    for chunk in stream:
        if "stream" in chunk:
            log.append(chunk["stream"])
        if "error" in chunk:
            raise AssertionError(f"build failed: {chunk['error']}\n{''.join(log)}")
        if "aux" in chunk and "ID" in chunk["aux"]:
            image_id = chunk["aux"]["ID"]
    assert image_id, "".join(log)
    return Built(image_id=image_id, log=log)


def run(client: docker.DockerClient, image: str, command: list[str], **options: Any) -> str:
    """The output of `command` in a throwaway container of `image`, without a network."""
    output = client.containers.run(
        image, command, remove=True, network_mode="none", stderr=True, **options
    )
    return output.decode()
