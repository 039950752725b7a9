"""A package's paths as a tree: each member header checked, then the whole, then its layout.

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

import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slipway.core.errors import InputError
from slipway.releases.package_names import show

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\\udc80-\udcff]")
_PLAIN_MARKERS = frozenset({"bin", "conf", "lib", "logs"})
_SCRIPT = re.compile(r"(?:(\d{1,6})_)?(deploy|start|stop)\.sh")
_SQL = re.compile(r"(\d{1,6})_.+\.sql", re.IGNORECASE)
_VERSION_DIR = re.compile(r"(?:.*[_-])?[vV]?(\d{1,9}(?:\.\d{1,9}){0,3})")
_REBUILD = (
    "rebuild the package from a plain release directory "
    "(regular files, directories and links that stay inside it)"
)
SHRINK_FIX = "make the package smaller or split it"
_MAX_WARNINGS = 50


@dataclass(frozen=True)
class ArchiveLimits:
    """What a package may expand to; the ratio is only checked past `ratio_floor_bytes`."""

    max_members: int = 200_000
    max_expanded_bytes: int = 20 * 2**30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 64 * 2**20
    max_member_bytes: int = 8 * 2**30
    max_path_length: int = 1024


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


def path_parts(path: str) -> list[str]:
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


class Tree:
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
        parts = path_parts(text)
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
            raise unsafe(member, "too_many_members", problem, SHRINK_FIX)
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
                raise unsafe(member, "member_too_large", problem, SHRINK_FIX)
            self.expanded += info.size
            if self.expanded > limits.max_expanded_bytes:
                problem = f"takes the package past {limits.max_expanded_bytes} bytes expanded"
                raise unsafe(member, "too_large", problem, SHRINK_FIX)
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


def detect_layout(tree: Tree) -> tuple[str, str]:
    root = ""
    top = tree.children[""]
    if len(top) == 1 and not top & _PLAIN_MARKERS and "current" not in top:
        only = next(iter(top))
        root = only if only in tree.dirs else ""
    current = tree.entries.get(_join(root, "current"))
    if current is None or current.kind != "symlink":
        return "plain", root
    target = "/".join(path_parts(current.target))
    version_dir = _join(root, target)
    if "/" in target or target in ("", "..") or version_dir not in tree.dirs:
        raise _layout_error(
            f"the package's 'current' link points at {show(current.target)}, not at a version "
            "directory beside it; point it at that directory (current -> wecube-core_1.0.0) or "
            "leave the link out"
        )
    return "versioned", version_dir


def find_scripts(tree: Tree, root: str) -> dict[str, Any]:
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


def _sql_scripts(tree: Tree, folder: str) -> list[str]:
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


def find_db_versions(tree: Tree) -> tuple[str, list[dict[str, Any]]]:
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
