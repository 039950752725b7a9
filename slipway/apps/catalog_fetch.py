"""Bringing a catalog source's files into a directory of ours, refusing anything unsafe.

An archive (a .tar.gz / .tar / .zip at a path or an http(s) URL) is checked member by member
before anything is written: absolute paths, `..`, links that leave the tree, device files and
oversized content are refused, naming the member. A directory is copied under the same rules.
A URL passes the outbound-address policy (core/outbound.py) first.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from slipway.core import outbound
from slipway.core.config import get_settings
from slipway.core.errors import ExternalServiceError, InputError
from slipway.core.outbound_allow import AllowList, current_allow_list

MAX_DOWNLOAD_BYTES = 256 << 20
MAX_CONTENT_BYTES = 1 << 30
MAX_MEMBERS = 50_000
FETCH_TIMEOUT = 30.0


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def display_location(location: str) -> str:
    """The location without any user:password of a URL, safe to show and log."""
    if not is_url(location):
        return location
    parts = urlsplit(location)
    if "@" not in parts.netloc:
        return location
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, ""))


def _unsafe(member: str, reason: str, *, code: str = "unsafe_archive") -> InputError:
    return InputError(
        f"archive member {member!r} {reason}; the archive was refused and nothing changed",
        code=code,
        details={"field": "location", "member": member},
    )


def _too_large(what: str, limit: int, *, code: str = "archive_too_large") -> InputError:
    return InputError(
        f"{what} is larger than the limit of {limit >> 20} MiB; split the catalog or remove "
        "large files from it",
        code=code,
        details={"field": "location", "limit_bytes": limit},
    )


def download(url: str, dest: Path, *, allow: AllowList | None = None) -> None:
    """Fetch `url` into the file `dest`; 502 when it cannot be fetched, 422 when too large or
    refused by the outbound policy (`allow` defaults to the allow-list in force)."""
    shown = display_location(url)
    if allow is None:
        allow = current_allow_list(get_settings())
    try:
        with outbound.stream(
            "GET", url, allow=allow, field="location", timeout=FETCH_TIMEOUT
        ) as response:
            if response.status_code >= 400:
                raise ExternalServiceError(
                    f"{shown} answered HTTP {response.status_code}; check the URL and that the "
                    "server publishes the archive there",
                    code="catalog_fetch_failed",
                    details={"field": "location", "status": response.status_code},
                )
            declared = int(response.headers.get("content-length") or 0)
            if declared > MAX_DOWNLOAD_BYTES:
                raise _too_large(f"the archive at {shown}", MAX_DOWNLOAD_BYTES)
            size = 0
            with open(dest, "wb") as handle:
                for chunk in response.iter_bytes(1 << 16):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD_BYTES:
                        raise _too_large(f"the archive at {shown}", MAX_DOWNLOAD_BYTES)
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        raise ExternalServiceError(
            f"cannot fetch {shown}: {type(exc).__name__}: {str(exc)[:200] or 'no answer'}; check "
            "the URL and that slipway can reach it",
            code="catalog_fetch_failed",
            details={"field": "location"},
        ) from None


def _clean_name(name: str) -> str:
    """The member's path inside the tree, or an error when it would land outside it."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise _unsafe(name, "has an absolute path")
    if "\\" in name or "\x00" in name:
        raise _unsafe(name, "has a backslash or NUL in its name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(name, "has '..' in its path")
    return "/".join(parts)


def _link_stays_inside(name: str, target: str) -> bool:
    if not target or target.startswith("/"):
        return False
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    return resolved != ".." and not resolved.startswith("../")


def _check_tar(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = archive.getmembers()
    if len(members) > MAX_MEMBERS:
        raise _too_large(f"the archive ({len(members)} members)", MAX_CONTENT_BYTES)
    total = 0
    for member in members:
        clean = _clean_name(member.name)
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise _unsafe(member.name, "is a device or FIFO file")
        if member.issym() and not _link_stays_inside(clean, member.linkname):
            raise _unsafe(member.name, f"is a link out of the tree (to {member.linkname!r})")
        if member.islnk() and not _link_stays_inside("", member.linkname):
            raise _unsafe(member.name, f"is a hard link out of the tree ({member.linkname!r})")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise _unsafe(member.name, "is not a file, directory or link")
        total += member.size
        if total > MAX_CONTENT_BYTES:
            raise _too_large("the archive's content", MAX_CONTENT_BYTES)
    return members


def _extract_zip(archive: zipfile.ZipFile, dest: Path) -> None:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _too_large(f"the archive ({len(infos)} members)", MAX_CONTENT_BYTES)
    total = 0
    links: dict[str, str] = {}
    for info in infos:
        clean = _clean_name(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            raise _unsafe(info.filename, "is a device or FIFO file")
        if stat.S_ISLNK(mode):
            target = archive.read(info).decode("utf-8", errors="replace")
            if not _link_stays_inside(clean, target):
                raise _unsafe(info.filename, f"is a link out of the tree (to {target!r})")
            links[clean] = target
        total += info.file_size
        if total > MAX_CONTENT_BYTES:
            raise _too_large("the archive's content", MAX_CONTENT_BYTES)
    for info in infos:
        clean = _clean_name(info.filename)
        if not clean or clean in links:
            continue
        path = dest / clean
        if info.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target)
        if (info.external_attr >> 16) & 0o111:
            path.chmod(0o755)
    for clean, target in links.items():
        (dest / clean).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest / clean)


def check_links(root: Path) -> None:
    """Every symlink under `root` resolves inside it, also through chains of links that each
    look harmless on their own (`a -> .`, `b -> a/a/..`)."""
    top = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                resolved = os.path.realpath(path)
                if resolved != top and not resolved.startswith(top + os.sep):
                    relative = path.relative_to(root).as_posix()
                    raise _unsafe(relative, f"is a link out of the tree (to {os.readlink(path)!r})")


def extract(archive_path: Path, dest: Path, *, shown: str) -> None:
    """Unpack the archive into the empty directory `dest` after checking every member."""
    if tarfile.is_tarfile(archive_path):
        try:
            with tarfile.open(archive_path) as archive:
                members = _check_tar(archive)
                archive.extractall(dest, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InputError(
                f"{shown} is not a readable archive: {exc}",
                code="bad_archive",
                details={"field": "location"},
            ) from None
        return
    if zipfile.is_zipfile(archive_path):
        try:
            with zipfile.ZipFile(archive_path) as archive:
                _extract_zip(archive, dest)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise InputError(
                f"{shown} is not a readable archive: {exc}",
                code="bad_archive",
                details={"field": "location"},
            ) from None
        return
    raise InputError(
        f"{shown} is not a .tar.gz, .tar or .zip archive",
        code="bad_archive",
        details={"field": "location"},
    )


def fetch_archive(location: str, dest: Path, *, allow: AllowList | None = None) -> None:
    """Unpack the archive at `location` (an http(s) URL or a file path) into `dest`."""
    shown = display_location(location)
    if is_url(location):
        with tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
            archive_path = Path(scratch) / "archive"
            download(location, archive_path, allow=allow)
            extract(archive_path, dest, shown=shown)
        check_links(dest)
        return
    path = Path(location)
    if not path.is_file():
        raise InputError(
            f"{location} is not a file: give the path of a .tar.gz or .zip, or an http(s) URL",
            code="not_a_file",
            details={"field": "location"},
        )
    if path.stat().st_size > MAX_DOWNLOAD_BYTES:
        raise _too_large(f"the archive {location}", MAX_DOWNLOAD_BYTES)
    extract(path, dest, shown=shown)
    check_links(dest)


def copy_directory(source: Path, dest: Path) -> None:
    """Copy the tree at `source` into the empty directory `dest`, under the archive rules."""
    if not source.is_dir():
        raise InputError(
            f"{source} is not a directory: give the path of a directory holding app folders",
            code="not_a_directory",
            details={"field": "location"},
        )
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        relative_dir = here.relative_to(source)
        (dest / relative_dir).mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames + [d for d in dirnames if (here / d).is_symlink()]):
            path = here / name
            relative = (relative_dir / name).as_posix()
            count += 1
            if count > MAX_MEMBERS:
                raise _too_large(f"{source} ({count}+ files)", MAX_CONTENT_BYTES, code="too_large")
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(path)
                if not _link_stays_inside(relative, target):
                    raise _unsafe(relative, f"is a link out of the tree (to {target!r})")
                os.symlink(target, dest / relative)
            elif stat.S_ISREG(mode):
                total += path.stat().st_size
                if total > MAX_CONTENT_BYTES:
                    raise _too_large(str(source), MAX_CONTENT_BYTES, code="too_large")
                shutil.copy2(path, dest / relative)
            else:
                raise _unsafe(relative, "is a device, FIFO or socket file")
    check_links(dest)
