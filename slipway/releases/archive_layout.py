"""What a checked package tree holds: its layout, scripts and config files, or DB versions.

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
from collections.abc import Sequence
from typing import Any

from slipway.core.errors import InputError
from slipway.releases.archive_tree import Tree, join, path_parts, unsafe
from slipway.releases.dbpackage import SCRIPT_NAME, VERSION_DIR, version_key
from slipway.releases.package_names import show

_PLAIN_MARKERS = frozenset({"bin", "conf", "lib", "logs"})
_SCRIPT = re.compile(r"(?:(\d{1,6})_)?(deploy|start|stop)\.sh")


def _layout_error(problem: str, code: str = "bad_package_layout") -> InputError:
    return InputError(problem, code=code, details={"field": "file", "reason": code})


def detect_layout(tree: Tree) -> tuple[str, str]:
    root = ""
    top = tree.children[""]
    if len(top) == 1 and not top & _PLAIN_MARKERS and "current" not in top:
        only = next(iter(top))
        root = only if only in tree.dirs else ""
    current = tree.entries.get(join(root, "current"))
    if current is None or current.kind != "symlink":
        return "plain", root
    target = "/".join(path_parts(current.target))
    version_dir = join(root, target)
    if "/" in target or target in ("", "..") or version_dir not in tree.dirs:
        raise _layout_error(
            f"the package's 'current' link points at {show(current.target)}, not at a version "
            "directory beside it; point it at that directory (current -> wecube-core_1.0.0) or "
            "leave the link out"
        )
    return "versioned", version_dir


def find_scripts(tree: Tree, root: str) -> dict[str, Any]:
    found: dict[str, list[tuple[int, str]]] = {"deploy": [], "start": [], "stop": []}
    for folder in (root, join(root, "bin")):
        for name in tree.children.get(folder, set()) if folder in tree.dirs else set():
            match = _SCRIPT.fullmatch(name)
            path = join(folder, name)
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


def find_config_files(tree: Tree, root: str, matchers: list[re.Pattern[str]]) -> list[str]:
    """The config files under `root` that `matchers` pick, relative to it: a symlink is left out
    with a warning, a file sharing its data with a hard link refused."""
    prefix = f"{root}/" if root else ""
    linked = {e.target for e in tree.entries.values() if e.kind == "hardlink"}
    found = []
    for path, entry in tree.entries.items():
        if entry.kind == "dir" or not path.startswith(prefix):
            continue
        relative = path[len(prefix) :]
        if not any(matcher.fullmatch(relative) for matcher in matchers):
            continue
        if entry.kind == "symlink":
            tree.warn(f"{relative} is a symlink; its variables are not rendered")
        elif entry.kind == "hardlink" or path in linked:
            problem = "is a config file sharing its data with a hard link, so rendering it "
            problem += "would change the other path too"
            raise unsafe(path, "hardlinked_config", problem, "store it as a plain file")
        else:
            found.append(relative)
    return sorted(found)


def _db_error(problem: str) -> InputError:
    return _layout_error(
        f"{problem}; a database package holds version directories (app_v1.0, v1.1, 1.2.3), each "
        "with increment/ and/or rollback/ holding numbered scripts such as 1_create_tables.sql",
        code="bad_db_package",
    )


def _sql_scripts(tree: Tree, folder: str) -> list[str]:
    numbered = []
    for name in tree.children.get(folder, set()):
        path = join(folder, name)
        match = SCRIPT_NAME.fullmatch(name)
        if tree.kind(path) not in ("file", "hardlink") or match is None:
            raise _db_error(f"{path} is not a numbered SQL file (like 1_create.sql)")
        numbered.append((int(match["number"]), name))
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
        path = join(root, name)
        match = VERSION_DIR.fullmatch(name)
        if path not in tree.dirs or match is None:
            raise _db_error(f"{path} is not a version directory")
        unknown = sorted(tree.children.get(path, set()) - {"increment", "rollback"})
        if unknown:
            raise _db_error(f"{path} holds {', '.join(unknown)}")
        version: dict[str, Any] = {"dir": name, "version": match["version"]}
        for step in ("increment", "rollback"):
            folder = join(path, step)
            if tree.kind(folder) not in (None, "dir"):
                raise _db_error(f"{folder} is not a directory")
            version[step] = _sql_scripts(tree, folder)
        if not version["increment"] and not version["rollback"]:
            raise _db_error(f"{path} holds no SQL scripts")
        key = version_key(match["version"])
        if key in versions:
            raise _db_error(f"{join(root, versions[key]['dir'])} and {path} are the same version")
        versions[key] = version
    if not versions:
        raise _db_error("the package holds no version directories")
    return root, [versions[key] for key in sorted(versions)]
