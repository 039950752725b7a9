"""Release package names and archive inspection, without extracting anything.

A package is read as one gzip stream. Every member header is checked before its data is
decompressed, bytes are metered while decompressing (so a gzip bomb stops at the limit), and no
member data is ever written to disk. Refusals, by code and `details.reason`:

    bad_package_name    the file name is not `<name>_<X.Y.Z>_<build>.tar.gz` (or `.tgz`)
    bad_archive         not_gzip, corrupt (not tar, truncated, bad checksum) or empty
    unsafe_archive      absolute_path, parent_reference, backslash, control_character,
                        bad_encoding, path_too_long, device, fifo, unsupported_type, setuid,
                        setgid, absolute_link, link_escapes, link_loop, empty_link_target,
                        hardlink_target, hardlinked_config, through_symlink,
                        parent_not_directory, duplicate_conflict, bad_root, oversized_header,
                        too_many_members, member_too_large, too_large, compression_ratio
    bad_package_layout  ambiguous scripts, or a `current` link that is not a version directory
    bad_db_package      not version dirs of increment/ and rollback/ holding N_*.sql files

Decisions: a same-kind duplicate is allowed and the later member wins, as on extraction; a path
that changes kind (file, directory, link) is refused. setuid/setgid files are refused because
they would run with another user's rights on the target; a setgid directory, sticky bits and
world-writable modes only produce `warnings`, since the deployer sets modes itself.

Layout (app packages): a top-level `current` symlink to a top-level directory makes it
"versioned" with that directory as content root; otherwise "plain". When the top holds a single
directory and none of bin/conf/lib/logs, that directory is the content root (one level only).
Scripts live directly in the content root or its bin/: deploy scripts are `deploy.sh` and
`N_deploy.sh`, run in ascending N (`deploy.sh` counts as 0); start and stop are `start.sh` or
`N_start.sh` (`stop.sh`, `N_stop.sh`), at most one each. Two deploy scripts with the same N, or
two start (stop) scripts, are refused as ambiguous. A DB package may sit in one wrapper
directory too (a single top directory without increment/ or rollback/ inside).
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import tarfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from slipway.core.errors import InputError

NAME_RULE = "<name>_<X.Y.Z>_<build>.tar.gz"
EXAMPLE_NAME = "wecube-core_1.0.0_20191101001.tar.gz"
EXAMPLE_DB_NAME = "wecube-core-db_1.0.1_20191101001.tar.gz"
_EXTENSIONS = (".tar.gz", ".tgz")
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_VERSION = re.compile(r"\d{1,9}\.\d{1,9}\.\d{1,9}")
# tarfile copies its leftover buffer on every header read: small reads keep that cheap.
_CHUNK = 1 << 16
# tarfile reads pax and GNU long-name headers whole into memory; real ones are tiny.
_MAX_META_BYTES = 1 << 20
_META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE)
_META_TYPES += (tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\\udc80-\udcff]")
_PLAIN_MARKERS = frozenset({"bin", "conf", "lib", "logs"})
_SCRIPT = re.compile(r"(?:(\d{1,6})_)?(deploy|start|stop)\.sh")
_SQL = re.compile(r"(\d{1,6})_.+\.sql", re.IGNORECASE)
_VERSION_DIR = re.compile(r"(?:.*[_-])?[vV]?(\d{1,9}(?:\.\d{1,9}){0,3})")
_REBUILD = (
    "rebuild the package from a plain release directory "
    "(regular files, directories and links that stay inside it)"
)
_SHRINK = "make the package smaller or split it"
_MAX_WARNINGS = 50


@dataclass(frozen=True)
class PackageName:
    """A parsed package file name; `name` is the application's, without `-db`."""

    name: str
    version: str
    build: str
    is_db: bool
    filename: str

    @property
    def version_key(self) -> tuple[int, int, int]:
        major, minor, patch = (int(part) for part in self.version.split("."))
        return major, minor, patch


def show(text: str) -> str:
    """A name as a message can show it: quoted, escaped, cut short."""
    return repr(text if len(text) <= 120 else text[:120] + "...")


def _bad_name(filename: str, problem: str, reason: str) -> InputError:
    return InputError(
        f"package file name {show(filename)} {problem}; name packages {NAME_RULE} "
        "(name of letters, digits, '.' and '-'; version of exactly three dotted numbers), "
        f"e.g. {EXAMPLE_NAME} or, for a database package, {EXAMPLE_DB_NAME}",
        code="bad_package_name",
        details={"field": "file", "filename": filename[:300], "reason": reason},
    )


def parse_package_name(filename: str, *, expect_db: bool | None = None) -> PackageName:
    """Parse `name_X.Y.Z_build.tar.gz`; `expect_db` refuses the other kind of package."""
    if "/" in filename or "\\" in filename or filename in ("", ".", ".."):
        raise _bad_name(filename, "is a path, not a file name", "path")
    if len(filename) > 255:
        raise _bad_name(filename, "is longer than 255 characters", "too_long")
    extension = next((ext for ext in _EXTENSIONS if filename.endswith(ext)), None)
    if extension is None:
        raise _bad_name(filename, "does not end in .tar.gz or .tgz", "extension")
    parts = filename[: -len(extension)].split("_")
    if len(parts) == 2 and _VERSION.fullmatch(parts[1]):
        raise _bad_name(filename, "has no build number after the version", "no_build")
    if len(parts) != 3:
        raise _bad_name(filename, "does not have exactly two '_' separators", "separators")
    name, version, build = parts
    if not _VERSION.fullmatch(version):
        problem = f"has version {show(version)}, not three dotted numbers like 1.0.0"
        raise _bad_name(filename, problem, "version")
    if not _NAME_PART.fullmatch(name):
        raise _bad_name(filename, f"has an invalid name part {show(name)}", "name")
    if not _NAME_PART.fullmatch(build):
        raise _bad_name(filename, f"has an invalid build part {show(build)}", "build")
    words = name.split("-")
    is_db = len(words) > 1 and words[-1].lower() == "db"
    if expect_db is True and not is_db:
        problem = "names an application package where a database package (…-db_) is expected"
        raise _bad_name(filename, problem, "expected_db")
    if expect_db is False and is_db:
        problem = "names a database package (ends in -db) where an application package is expected"
        raise _bad_name(filename, problem, "expected_app")
    app = "-".join(words[:-1]) if is_db else name
    return PackageName(name=app, version=version, build=build, is_db=is_db, filename=filename)


@dataclass(frozen=True)
class ArchiveLimits:
    """What a package may expand to; the ratio is only checked past `ratio_floor_bytes`."""

    max_members: int = 200_000
    max_expanded_bytes: int = 20 * 2**30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 64 * 2**20
    max_member_bytes: int = 8 * 2**30
    max_path_length: int = 1024


@dataclass
class ArchiveReport:
    """What an inspected package holds; paths are relative to `content_root`."""

    members: int
    expanded_bytes: int
    layout: str
    content_root: str
    scripts: dict[str, Any]
    config_files: list[str]
    db_versions: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def unsafe(member: str, reason: str, problem: str, fix: str = _REBUILD) -> InputError:
    return InputError(
        f"package member {show(member)} {problem}; {fix}",
        code="unsafe_archive",
        details={"field": "file", "member": member[:300], "reason": reason},
    )


def _layout_error(problem: str, code: str = "bad_package_layout") -> InputError:
    return InputError(problem, code=code, details={"field": "file", "reason": code})


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


@dataclass(slots=True)
class _Entry:
    kind: str  # file, dir, symlink or hardlink
    target: str = ""


def _family(kind: str) -> str:
    return "file" if kind == "hardlink" else kind


def _link_problem(path: str, target: str, symlinks: dict[str, str]) -> str | None:
    """Resolve `target` as the kernel would, through the package's own links; None if inside."""
    resolved = path.split("/")[:-1]
    pending = target.split("/")[::-1]
    hops = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                return "link_escapes"
            resolved.pop()
            continue
        resolved.append(part)
        inner = symlinks.get("/".join(resolved))
        if inner is None:
            continue
        hops += 1
        if hops > 40:
            return "link_loop"
        resolved.pop()
        pending.extend(inner.split("/")[::-1])
    return None


class _Tree:
    """The package's paths, checked one header at a time and then as a whole."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.entries: dict[str, _Entry] = {}
        self.members = 0
        self.expanded = 0
        self.warnings: list[str] = []
        self.dirs: set[str] = {""}
        self.children: dict[str, set[str]] = {"": set()}

    def _check_text(self, text: str, member: str) -> None:
        bad = _BAD_CHARS.search(text)
        if bad is not None:
            char = bad.group()
            if char == "\\":
                raise unsafe(member, "backslash", "has a backslash in its path")
            if "\udc80" <= char <= "\udcff":
                raise unsafe(member, "bad_encoding", "has a path that is not UTF-8")
            raise unsafe(member, "control_character", "has a control character in its path")
        limit = self.limits.max_path_length
        if len(text.encode()) > limit or any(len(p.encode()) > 255 for p in text.split("/")):
            problem = f"has a path longer than {limit} bytes (or a name over 255)"
            raise unsafe(member, "path_too_long", problem)

    def _path(self, text: str, member: str, *, is_link: bool = False) -> str:
        self._check_text(text, member)
        if text.startswith("/"):
            if is_link:
                raise unsafe(member, "absolute_link", f"links to the absolute path {show(text)}")
            raise unsafe(member, "absolute_path", "has an absolute path")
        parts = _parts(text)
        if ".." in parts:
            if is_link:
                raise unsafe(member, "link_escapes", f"links to {show(text)}, outside the package")
            raise unsafe(member, "parent_reference", "has a '..' component in its path")
        return "/".join(parts)

    def _warn(self, text: str) -> None:
        if len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(text)

    def _kind(self, info: tarfile.TarInfo) -> str:
        if info.isreg():
            return "file"
        if info.isdir():
            return "dir"
        if info.issym():
            return "symlink"
        if info.islnk():
            return "hardlink"
        if info.ischr() or info.isblk():
            raise unsafe(info.name, "device", "is a device file")
        if info.isfifo():
            raise unsafe(info.name, "fifo", "is a named pipe (FIFO)")
        raise unsafe(info.name, "unsupported_type", f"has unsupported tar type {info.type!r}")

    def add(self, info: tarfile.TarInfo) -> None:
        """Check one member header, before any of its data is read."""
        limits, member = self.limits, info.name
        self.members += 1
        if self.members > limits.max_members:
            problem = f"is past the limit of {limits.max_members} members"
            raise unsafe(member, "too_many_members", problem, _SHRINK)
        name = self._path(member, member)
        kind = self._kind(info)
        if kind in ("file", "hardlink") and info.mode & 0o6000:
            reason = "setuid" if info.mode & 0o4000 else "setgid"
            raise unsafe(member, reason, f"has the {reason} bit set", "clear it (chmod ug-s)")
        if kind != "symlink" and info.mode & 0o7002:
            self._warn(f"{name or '.'} has mode {info.mode:04o}; the deployer does not keep it")
        target = ""
        if kind == "file":
            if info.size > limits.max_member_bytes:
                problem = f"is larger than {limits.max_member_bytes} bytes"
                raise unsafe(member, "member_too_large", problem, _SHRINK)
            self.expanded += info.size
            if self.expanded > limits.max_expanded_bytes:
                problem = f"takes the package past {limits.max_expanded_bytes} bytes expanded"
                raise unsafe(member, "too_large", problem, _SHRINK)
        elif kind == "symlink":
            target = info.linkname
            if not target:
                raise unsafe(member, "empty_link_target", "is a symlink with an empty target")
            self._check_text(target, member)
            if target.startswith("/"):
                raise unsafe(member, "absolute_link", f"links to the absolute path {show(target)}")
        elif kind == "hardlink":
            target = self._path(info.linkname, member, is_link=True)
            earlier = self.entries.get(target)
            if earlier is None or _family(earlier.kind) != "file":
                problem = f"hard-links to {show(target)}, not a regular file earlier in the package"
                raise unsafe(member, "hardlink_target", problem)
        if not name:
            if kind != "dir":
                raise unsafe(member, "bad_root", "makes the package root a non-directory")
            return
        earlier = self.entries.get(name)
        if earlier is not None and _family(earlier.kind) != _family(kind):
            problem = f"is a {kind} but an earlier member of that path is a {earlier.kind}"
            raise unsafe(member, "duplicate_conflict", problem)
        self.entries[name] = _Entry(kind, target)

    def finish(self) -> None:
        """Checks that need the whole tree: parents, and where each symlink resolves."""
        symlinks = {p: e.target for p, e in self.entries.items() if e.kind == "symlink"}
        for path, entry in self.entries.items():
            parent = ""
            parts = path.split("/")
            for part in parts[:-1]:
                prefix = _join(parent, part)
                above = self.entries.get(prefix)
                if above is not None and above.kind != "dir":
                    if above.kind == "symlink":
                        problem = f"would be written through the symlink {show(prefix)}"
                        raise unsafe(path, "through_symlink", problem)
                    problem = f"is inside {show(prefix)}, which is not a directory"
                    raise unsafe(path, "parent_not_directory", problem)
                self.children.setdefault(parent, set()).add(part)
                self.dirs.add(prefix)
                parent = prefix
            self.children.setdefault(parent, set()).add(parts[-1])
            if entry.kind == "dir":
                self.dirs.add(path)
        for path, target in symlinks.items():
            reason = _link_problem(path, target, symlinks)
            if reason == "link_loop":
                raise unsafe(path, reason, f"links to {show(target)} in a loop of symlinks")
            if reason is not None:
                raise unsafe(path, reason, f"links to {show(target)}, outside the package")

    def kind(self, path: str) -> str | None:
        if path in self.dirs:
            return "dir"
        entry = self.entries.get(path)
        return entry.kind if entry else None

    def config_files(self, root: str, matchers: list[re.Pattern[str]]) -> list[str]:
        prefix = f"{root}/" if root else ""
        linked = {e.target for e in self.entries.values() if e.kind == "hardlink"}
        found = []
        for path, entry in self.entries.items():
            if entry.kind == "dir" or not path.startswith(prefix):
                continue
            relative = path[len(prefix) :]
            if not any(matcher.fullmatch(relative) for matcher in matchers):
                continue
            if entry.kind == "symlink":
                self._warn(f"{relative} is a symlink; its variables are not rendered")
            elif entry.kind == "hardlink" or path in linked:
                problem = "is a config file sharing its data with a hard link, so rendering it "
                problem += "would change the other path too"
                raise unsafe(path, "hardlinked_config", problem, "store it as a plain file")
            else:
                found.append(relative)
        return sorted(found)


def compile_globs(globs: Sequence[str]) -> list[re.Pattern[str]]:
    """Globs over paths relative to the content root: `**` spans directories, `*` does not."""
    compiled = []
    for glob in globs:
        if not glob or glob.startswith("/") or ".." in glob.split("/") or "\\" in glob:
            raise InputError(
                f"config glob {show(glob)} must be a relative path pattern such as conf/**",
                field="config_globs",
                code="bad_glob",
            )
        out, i = [], 0
        while i < len(glob):
            if glob.startswith("**/", i):
                out.append("(?:[^/]+/)*")
                i += 3
            elif glob.startswith("**", i):
                out.append(".*")
                i += 2
            elif glob[i] == "*":
                out.append("[^/]*")
                i += 1
            elif glob[i] == "?":
                out.append("[^/]")
                i += 1
            elif glob[i] == "[" and (end := glob.find("]", i + 2)) != -1:
                inner = glob[i + 1 : end].replace("\\", "\\\\")
                out.append("[^" + inner[1:] + "]" if inner.startswith("!") else f"[{inner}]")
                i = end + 1
            else:
                out.append(re.escape(glob[i]))
                i += 1
        compiled.append(re.compile("".join(out)))
    return compiled


def _detect_layout(tree: _Tree) -> tuple[str, str]:
    root = ""
    top = tree.children[""]
    if len(top) == 1 and not top & _PLAIN_MARKERS and "current" not in top:
        only = next(iter(top))
        root = only if only in tree.dirs else ""
    current = tree.entries.get(_join(root, "current"))
    if current is None or current.kind != "symlink":
        return "plain", root
    target = "/".join(_parts(current.target))
    version_dir = _join(root, target)
    if "/" in target or target in ("", "..") or version_dir not in tree.dirs:
        raise _layout_error(
            f"the package's 'current' link points at {show(current.target)}, not at a version "
            "directory beside it; point it at that directory (current -> wecube-core_1.0.0) or "
            "leave the link out"
        )
    return "versioned", version_dir


def _find_scripts(tree: _Tree, root: str) -> dict[str, Any]:
    found: dict[str, list[tuple[int, str]]] = {"deploy": [], "start": [], "stop": []}
    for folder in (root, _join(root, "bin")):
        for name in tree.children.get(folder, set()) if folder in tree.dirs else set():
            match = _SCRIPT.fullmatch(name)
            path = _join(folder, name)
            if match and tree.kind(path) not in (None, "dir"):
                relative = path[len(root) + 1 :] if root else path
                found[match[2]].append((int(match[1] or 0), relative))
    deploy = sorted(found["deploy"])
    for (number, first), (other, second) in zip(deploy, deploy[1:], strict=False):
        if number == other:
            raise _layout_error(
                f"deploy scripts {first} and {second} both run as step {number}; number them "
                "1_deploy.sh, 2_deploy.sh, ... in the order they must run"
            )
    scripts: dict[str, Any] = {"deploy": [path for _, path in deploy]}
    for which in ("start", "stop"):
        paths = sorted(path for _, path in found[which])
        if len(paths) > 1:
            raise _layout_error(
                f"the package has {len(paths)} {which} scripts ({', '.join(paths)}); keep one "
                f"{which}.sh (in bin/) and call the others from it"
            )
        scripts[which] = paths[0] if paths else None
    return scripts


def _db_error(problem: str) -> InputError:
    return _layout_error(
        f"{problem}; a database package holds version directories (app_v1.0, v1.1, 1.2.3), each "
        "with increment/ and/or rollback/ holding numbered scripts such as 1_create_tables.sql",
        code="bad_db_package",
    )


def _sql_scripts(tree: _Tree, folder: str) -> list[str]:
    numbered = []
    for name in tree.children.get(folder, set()):
        path = _join(folder, name)
        match = _SQL.fullmatch(name)
        if tree.kind(path) not in ("file", "hardlink") or match is None:
            raise _db_error(f"{path} is not a numbered SQL file (N_name.sql)")
        numbered.append((int(match[1]), name))
    numbered.sort()
    for (number, first), (other, second) in zip(numbered, numbered[1:], strict=False):
        if number == other:
            raise _db_error(f"{folder} has two scripts numbered {number}: {first} and {second}")
    return [name for _, name in numbered]


def _db_versions(tree: _Tree) -> tuple[str, list[dict[str, Any]]]:
    root, top = "", tree.children[""]
    only = next(iter(top)) if len(top) == 1 else ""
    if (
        only
        and only in tree.dirs
        and not tree.children.get(only, set()) & {"increment", "rollback"}
    ):
        root = only  # a wrapper directory, whatever its name
    versions: dict[tuple[int, ...], dict[str, Any]] = {}
    for name in sorted(tree.children.get(root, set())):
        path = _join(root, name)
        match = _VERSION_DIR.fullmatch(name)
        if path not in tree.dirs or match is None:
            raise _db_error(f"{path} is not a version directory")
        unknown = sorted(tree.children.get(path, set()) - {"increment", "rollback"})
        if unknown:
            raise _db_error(f"{path} holds {', '.join(unknown)}")
        version: dict[str, Any] = {"dir": name, "version": match[1]}
        for step in ("increment", "rollback"):
            folder = _join(path, step)
            if tree.kind(folder) not in (None, "dir"):
                raise _db_error(f"{folder} is not a directory")
            version[step] = _sql_scripts(tree, folder)
        if not version["increment"] and not version["rollback"]:
            raise _db_error(f"{path} holds no SQL scripts")
        key = tuple(int(n) for n in match[1].split("."))
        while len(key) > 1 and key[-1] == 0:
            key = key[:-1]
        if key in versions:
            raise _db_error(f"{_join(root, versions[key]['dir'])} and {path} are the same version")
        versions[key] = version
    if not versions:
        raise _db_error("the package holds no version directories")
    ordered = sorted(versions.values(), key=lambda v: [int(n) for n in v["version"].split(".")])
    return root, ordered


class _Meter:
    """The decompressed stream tarfile reads: counts bytes and stops at the limits."""

    def __init__(self, raw: BinaryIO, limits: ArchiveLimits) -> None:
        self._raw = raw
        self._gzip = gzip.GzipFile(fileobj=raw, mode="rb")
        self._limits = limits
        self.expanded = 0
        self.member = ""

    def read(self, size: int = -1) -> bytes:
        data = self._gzip.read(_CHUNK if size < 0 else min(size, _CHUNK))
        self.expanded += len(data)
        limits = self._limits
        # Header checks catch oversize members first; this also bounds padding and metadata.
        if self.expanded > limits.max_expanded_bytes + 1024 * limits.max_members:
            raise unsafe(self.member, "too_large", "expands past the size limit", _SHRINK)
        if self.expanded > limits.ratio_floor_bytes:
            if self.expanded / max(self._raw.tell(), 1) > limits.max_ratio:
                problem = f"expands over {limits.max_ratio:g} times its compressed size"
                fix = "this looks like a gzip bomb; if the data is real, raise the package limits"
                raise unsafe(self.member, "compression_ratio", problem, fix)
        return data

    def drain(self) -> None:
        """Read to the end so that the gzip checksum and length are verified."""
        while self.read(_CHUNK):
            pass


class _HeaderError(tarfile.TarError):
    """A broken header, which tarfile itself would take as a quiet end of the archive."""


class _CheckedTarInfo(tarfile.TarInfo):
    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.EOFHeaderError:
            raise  # the zero block that ends a well-formed archive
        except tarfile.HeaderError as exc:
            raise _HeaderError(f"{exc}: truncated or corrupt") from None

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _META_TYPES and self.size > _MAX_META_BYTES:
            raise unsafe(self.name, "oversized_header", "has an oversized extended header")
        return super()._proc_member(archive)  # type: ignore[misc, no-any-return]


def _bad_archive(path: Path, problem: str, reason: str) -> InputError:
    return InputError(
        f"{path.name} {problem}; upload the .tar.gz built from the release directory "
        f"(tar -C <release dir> -czf {EXAMPLE_NAME} .)",
        code="bad_archive",
        details={"field": "file", "reason": reason},
    )


@contextmanager
def _open_stream(path: Path, limits: ArchiveLimits) -> Iterator[tuple[tarfile.TarFile, _Meter]]:
    with path.open("rb") as raw:
        if raw.read(2) != b"\x1f\x8b":
            raise _bad_archive(path, "is not gzip-compressed", "not_gzip")
        raw.seek(0)
        meter = _Meter(raw, limits)
        try:
            with tarfile.open(
                fileobj=meter,  # type: ignore[arg-type]
                mode="r|",
                bufsize=_CHUNK,
                tarinfo=_CheckedTarInfo,
                encoding="utf-8",
                errors="surrogateescape",
            ) as archive:
                yield archive, meter
            meter.member = "(after the last member)"
            meter.drain()
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            problem = f"is not a complete tar.gz archive ({exc})"
            raise _bad_archive(path, problem, "corrupt") from None


def inspect_archive(
    path: Path,
    *,
    is_db: bool,
    config_globs: Sequence[str] = ("conf/**",),
    limits: ArchiveLimits = ArchiveLimits(),
) -> ArchiveReport:
    """Check every member of a package in one streaming pass and describe its layout."""
    matchers = compile_globs(config_globs)
    tree = _Tree(limits)
    with _open_stream(path, limits) as (archive, meter):
        for info in archive:
            meter.member = info.name
            tree.add(info)
            # Stream mode needs no history; keeping 10^5 TarInfo objects only feeds the GC.
            archive.members.clear()
    if not tree.entries:
        raise _bad_archive(path, "holds no files", "empty")
    tree.finish()
    report = ArchiveReport(
        members=tree.members,
        expanded_bytes=tree.expanded,
        layout="db",
        content_root="",
        scripts={"deploy": [], "start": None, "stop": None},
        config_files=[],
        warnings=tree.warnings,
    )
    if is_db:
        report.content_root, report.db_versions = _db_versions(tree)
        return report
    report.layout, report.content_root = _detect_layout(tree)
    report.scripts = _find_scripts(tree, report.content_root)
    report.config_files = tree.config_files(report.content_root, matchers)
    return report


def read_members(
    path: Path,
    names: Iterable[str],
    *,
    limits: ArchiveLimits = ArchiveLimits(),
    max_total_bytes: int = 64 * 2**20,
) -> dict[str, bytes]:
    """The bytes of the named regular files (archive paths; `./` optional), in one pass.

    Names that are not regular files in the archive are left out; of two same-named members
    the later wins, as on extraction.
    """
    wanted = {"/".join(_parts(name)) for name in names}
    found: dict[str, bytes] = {}
    with _open_stream(path, limits) as (archive, meter):
        for info in archive:
            archive.members.clear()  # as in inspect_archive
            name = "/".join(_parts(info.name))
            meter.member = info.name
            if name not in wanted or not info.isreg():
                continue
            total = sum(len(data) for key, data in found.items() if key != name) + info.size
            if total > max_total_bytes:
                problem = f"takes the files read past {max_total_bytes} bytes"
                raise unsafe(name, "too_large", problem, "render smaller config files")
            member = archive.extractfile(info)
            found[name] = member.read() if member is not None else b""
    return found
