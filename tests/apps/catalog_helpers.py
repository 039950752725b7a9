"""App templates in the docker-library layout, archives of them, and a real HTTP server."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COMPOSE = """\
services:
  {key}:
    image: $W9_REPO:$W9_VERSION
    container_name: $W9_ID
    restart: unless-stopped
    ports:
      - "$W9_HTTP_PORT_SET:80"
    volumes:
      - ./src/site.conf:/etc/site.conf:ro

networks:
  default:
    name: ${{W9_NETWORK}}
    external: true
"""

ENV = """\
# tags: https://hub.docker.com/_/{key}
W9_REPO={repo}
W9_DIST='{dist}'
W9_VERSION='{version}'
W9_POWER_PASSWORD='Sample-{key}-Pass!'
W9_LOGIN_USER=admin
W9_LOGIN_PASSWORD=$W9_POWER_PASSWORD
# Environments which for user settings when create application
W9_HTTP_PORT_SET='9001'
W9_DOMAIN_SET=

#### --  Not allowed to edit below environments when recreate app  -- ####
W9_ID='{key}'
W9_HTTP_PORT=80
W9_URL=''
W9_NETWORK=websoft9
APP_DB_HOST=$W9_ID-db  # the database container
APP_GREETING="hello\\nworld"
"""


def write_app(
    root: Path,
    key: str,
    *,
    version: str = "1.0",
    editions: Any = None,
    dist: str = "community",
    repo: str | None = None,
    requirements: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    readme: str | None = "# readme\n",
    notes: str | None = None,
) -> Path:
    """A template like the ones of Websoft9's docker-library, written from scratch."""
    folder = root / key
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "docker-compose.yml").write_text(COMPOSE.format(key=key))
    (folder / ".env").write_text(ENV.format(key=key, repo=repo or key, dist=dist, version=version))
    document = variables or {
        "name": key,
        "trademark": key.title(),
        "release": True,
        "edition": editions
        if editions is not None
        else [{"dist": dist, "version": [version, "latest"]}],
        "requirements": requirements or {"cpu": "1", "memory": "2", "disk": "1"},
    }
    (folder / "variables.json").write_text(json.dumps(document, indent=2))
    (folder / "src" / "site.conf").write_text(f"# {key}\n")
    if readme is not None:
        (folder / "README.md").write_text(readme)
    if notes is not None:
        (folder / "Notes.md").write_text(notes)
    return folder


def tar_directory(source: Path, archive: Path, *, prefix: str = "") -> Path:
    """A .tar.gz of everything under `source`, its paths under `prefix`."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(source.rglob("*")):
            name = f"{prefix}{path.relative_to(source).as_posix()}"
            tar.add(path, arcname=name, recursive=False)
    return archive


def zip_directory(source: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            zf.write(path, path.relative_to(source).as_posix())
    return archive


def add_member(archive: Path, info: tarfile.TarInfo, data: bytes = b"") -> None:
    """Append one crafted member to a fresh .tar.gz holding `archive`'s members and it."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            content = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            members.append((member, content))
    members.append((info, data))
    with tarfile.open(archive, "w:gz") as tar:
        for member, content in members:
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content) if member.isfile() else None)


@dataclass
class StaticServer:
    root: Path
    url: str


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(root: Path) -> Iterator[StaticServer]:
    """A real HTTP server for the files under `root`, in a thread."""
    root.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StaticServer(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
