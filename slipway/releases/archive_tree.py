"""A package's paths as a tree: each member header checked, then the whole.

`Tree.add` refuses a member from its header alone (unsafe path or type, setuid, limits) before
its data is read; `Tree.finish` checks what needs every path (parents, where symlinks resolve).
What the checked tree holds (layout, scripts, config files, DB versions) is `archive_layout`'s.
"""

from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass

from slipway.core.errors import InputError
from slipway.releases.package_names import show

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\\udc80-\udcff]")
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


def join(folder: str, name: str) -> str:
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

    def warn(self, text: str) -> None:
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
            self.warn(f"{name or '.'} has mode {info.mode:04o}; the deployer does not keep it")
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
                prefix = join(parent, part)
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
