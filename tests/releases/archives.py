"""Release packages for tests, built in memory with tarfile and written as .tar.gz files.

make_app_package(tmp_path, "demo", "1.0.0", {"conf/app.properties": "ip=[@db_ip]\\n"})
make_app_package(tmp_path, layout="versioned", extra=[symlink("evil", "/etc")])
make_db_package(tmp_path, "demo", "1.0.1", {"app_v1.0": {"increment": {"1_a.sql": "..."}}})
write_archive(tmp_path / "x.tar.gz", [file("a", "x"), fifo("p")])   # anything, hostile too
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

BUILD = "20240101001"
DEFAULT_SCRIPTS: dict[str, str] = {
    "bin/deploy.sh": "#!/bin/sh\necho deploy\n",
    "bin/start.sh": "#!/bin/sh\necho start\n",
    "bin/stop.sh": "#!/bin/sh\necho stop\n",
}
DEFAULT_FILES: dict[str, str | bytes] = {
    "conf/app.properties": "db.host=[@db_ip]\ndb.password=[!db_password]\n",
    "lib/app.jar": b"PK\x03\x04 not really a jar \x00\xff",
}


@dataclass(frozen=True)
class Member:
    """One tar member as a test wants it; `kind` is file, dir, symlink, hardlink, fifo, chr, blk."""

    name: str
    data: bytes = b""
    kind: str = "file"
    target: str = ""
    mode: int | None = None
    pax: dict[str, str] = field(default_factory=dict)

    def tarinfo(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type = _TYPES[self.kind]
        info.mode = self.mode if self.mode is not None else _MODES.get(self.kind, 0o644)
        info.mtime = 1_700_000_000
        info.linkname = self.target
        info.size = len(self.data) if self.kind == "file" else 0
        info.pax_headers = dict(self.pax)
        return info


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
}
_MODES = {"dir": 0o755, "symlink": 0o777}


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def file(name: str, data: str | bytes = b"", mode: int = 0o644) -> Member:
    return Member(name, _bytes(data), "file", mode=mode)


def directory(name: str, mode: int = 0o755) -> Member:
    return Member(name, kind="dir", mode=mode)


def symlink(name: str, target: str) -> Member:
    return Member(name, kind="symlink", target=target)


def hardlink(name: str, target: str) -> Member:
    return Member(name, kind="hardlink", target=target)


def fifo(name: str) -> Member:
    return Member(name, kind="fifo")


def device(name: str, kind: str = "chr") -> Member:
    return Member(name, kind=kind)


def tar_bytes(members: Iterable[Member], *, format: int = tarfile.PAX_FORMAT) -> bytes:
    """An uncompressed tar of `members`, in order, exactly as given (no checks)."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=format, encoding="utf-8", errors="surrogateescape"
    ) as archive:
        for member in members:
            data = io.BytesIO(member.data) if member.kind == "file" else None
            archive.addfile(member.tarinfo(), data)
    return buffer.getvalue()


def write_archive(
    path: Path,
    members: Iterable[Member],
    *,
    format: int = tarfile.PAX_FORMAT,
    compresslevel: int = 6,
) -> Path:
    """Write `members` as a .tar.gz at `path`; hostile member lists are the point.

    Level 6 is tar's own default; gzip's 9 takes minutes on large, repetitive test data.
    """
    raw = tar_bytes(members, format=format)
    path.write_bytes(gzip.compress(raw, compresslevel=compresslevel, mtime=0))
    return path


def package_filename(name: str, version: str, build: str = BUILD, *, is_db: bool = False) -> str:
    if is_db and not name.endswith("-db"):
        name = f"{name}-db"
    return f"{name}_{version}_{build}.tar.gz"


def _with_parents(files: Mapping[str, bytes], prefix: str) -> list[Member]:
    """Directory entries first, then files, like `tar -czf x .` produces."""
    dirs = {prefix} if prefix else set()
    for path in files:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    members = [directory(d) for d in sorted(dirs)]
    for path, data in files.items():
        mode = 0o755 if path.endswith(".sh") else 0o644
        members.append(file(path, data, mode=mode))
    return members


def make_app_package(
    directory: Path,
    name: str = "demo-app",
    version: str = "1.0.0",
    files: Mapping[str, str | bytes] | None = None,
    *,
    layout: str = "plain",
    scripts: Mapping[str, str | bytes] | None = None,
    build: str = BUILD,
    extra: Iterable[Member] = (),
    filename: str | None = None,
) -> Path:
    """An application package; `files` and `scripts` are relative to the release directory.

    layout: "plain" (release dir at the top), "versioned" (`<name>_<version>/` plus a `current`
    link to it) or "wrapper" (everything under one `<name>/` directory). `files` defaults to
    DEFAULT_FILES and `scripts` to DEFAULT_SCRIPTS (pass {} for none); `extra` members go at the
    end, at archive level, as given.
    """
    content = {**DEFAULT_SCRIPTS} if scripts is None else dict(scripts)
    content.update(DEFAULT_FILES if files is None else files)
    root = {"plain": "", "versioned": f"{name}_{version}", "wrapper": name}[layout]
    prefixed = {f"{root}/{p}" if root else p: _bytes(data) for p, data in content.items()}
    members = _with_parents(prefixed, root)
    if layout == "versioned":
        members.append(symlink("current", root))
    members.extend(extra)
    path = directory / (filename or package_filename(name, version, build))
    return write_archive(path, members)


def make_db_package(
    directory: Path,
    name: str = "demo-app",
    version: str = "1.0.0",
    versions: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
    *,
    build: str = BUILD,
    wrapper: str | None = None,
    extra: Iterable[Member] = (),
    filename: str | None = None,
) -> Path:
    """A database package: {"app_v1.0": {"increment": {"1_a.sql": sql}, "rollback": {...}}}."""
    if versions is None:
        versions = {
            "app_v1.0": {
                "increment": {"1_create_tables.sql": "CREATE TABLE t (id INT);\n"},
                "rollback": {"1_drop_tables.sql": "DROP TABLE t;\n"},
            }
        }
    prefix = f"{wrapper}/" if wrapper else ""
    content = {
        f"{prefix}{version_dir}/{step}/{script}": sql.encode()
        for version_dir, steps in versions.items()
        for step, scripts in steps.items()
        for script, sql in scripts.items()
    }
    members = _with_parents(content, wrapper or "")
    members.extend(extra)
    path = directory / (filename or package_filename(name, version, build, is_db=True))
    return write_archive(path, members)


def make_gzip_bomb(
    path: Path, *, expanded_bytes: int, member: str = "lib/zeros.bin", garbage_after: int = 0
) -> Path:
    """A package of one member of `expanded_bytes` zeros, written without ever holding it.

    The gzip file is a chain of gzip members, each 1 MiB of zeros, so it stays tiny on disk. With
    `garbage_after`, the stream turns into junk after that many MiB: a reader that does not stop
    at its limit fails differently.
    """
    mib = 1 << 20
    assert expanded_bytes % mib == 0, "whole MiB only"
    info = tarfile.TarInfo(member)
    info.size, info.mode, info.mtime = expanded_bytes, 0o644, 1_700_000_000
    header = info.tobuf(format=tarfile.PAX_FORMAT)
    zeros = gzip.compress(b"\0" * mib, mtime=0)
    with path.open("wb") as out:
        out.write(gzip.compress(header, mtime=0))
        for index in range(expanded_bytes // mib):
            if garbage_after and index == garbage_after:
                out.write(b"this is not gzip data" * 100)
                return path
            out.write(zeros)
        out.write(gzip.compress(b"\0" * 10240, mtime=0))  # end-of-archive blocks and padding
    return path
