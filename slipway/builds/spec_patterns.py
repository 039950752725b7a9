"""Strict patterns for every value a build spec puts into a Dockerfile or a build command.

Each `check_*` returns the value (normalized where said) or raises ValueError with a message
that shows the offending value and the accepted form; the caller adds the field path. Values
are also quoted when rendered (`shlex.quote`): the patterns are the first wall, quoting the
second. Shell metacharacters (`;`, `&`, `|`, `$`, backticks, quotes, newlines…) match no pattern.
"""

from __future__ import annotations

import re
import urllib.parse

SHELL_CHARACTERS = set(";&|$`'\"\\\n\r\t(){}*?!#~<>^") | {"\x00"}

# Docker's reference grammar (distribution/reference), ASCII only.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$",
    re.ASCII,
)
APT_PACKAGE = re.compile(
    r"^[a-z0-9][a-z0-9+.-]*(?::[a-z0-9-]+)?(?:=[A-Za-z0-9.+~:-]+|/[a-z0-9.-]+)?$", re.ASCII
)
YUM_PACKAGE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+.:-]*$", re.ASCII)
_PIP_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PIP_SPEC = r"(?:===|~=|==|!=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+"
PIP_REQUIREMENT = re.compile(
    rf"^(?P<name>{_PIP_NAME})(?:\[{_PIP_NAME}(?:,{_PIP_NAME})*\])?(?:{_PIP_SPEC}(?:,{_PIP_SPEC})*)?$",
    re.ASCII,
)
CONDA_SPEC = re.compile(
    r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]*::)?(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"(?:(?:==|>=|<=|!=|~=|=|<|>)[A-Za-z0-9.*+_!,=<>]+)?$",
    re.ASCII,
)
CONDA_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_.-]*(?:/[a-z0-9_.-]+)*$", re.ASCII)
URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~%+/-]*)?$", re.ASCII)
HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?$", re.ASCII)
INSTALL_LOC = re.compile(r"^(?:/[A-Za-z0-9._-]+)+$", re.ASCII)
PYTHON_VERSION = re.compile(r"^(?:python)?(?P<major>[0-9])(?:\.(?P<minor>[0-9]{1,2}))?$")
LABEL_KEY = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,126}[a-z0-9])?$", re.ASCII)
# Label values are not run by a shell, but Docker expands `$` and `\` in LABEL: keep them out.
LABEL_VALUE = re.compile(r"^[\w ._:/@+=,%<>()#-]{0,256}$")
TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+:-]{0,254}$", re.ASCII)
MIRROR_TYPE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$", re.ASCII)
MIRROR_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\.(?P<ext>list|repo)$", re.ASCII)

# A venv at one of these would overwrite the system.
SYSTEM_DIRS = frozenset(
    "/bin /boot /dev /etc /home /lib /lib64 /opt /proc /root /run /sbin /srv /sys /tmp /usr /var "
    "/usr/bin /usr/lib /usr/local /usr/local/bin /usr/local/lib /usr/sbin /usr/share".split()
)
MAX_ENTRY = 200


def shown(value: object) -> str:
    """The offending value as it may appear in a message: repr, cut short."""
    text = repr(value)
    return text if len(text) <= 82 else text[:79] + "...'"


def _why(value: str) -> str:
    bad = sorted({c for c in value if c in SHELL_CHARACTERS or not c.isprintable() or c == " "})
    if not bad:
        return ""
    return f" (it holds {', '.join(repr(c) for c in bad[:5])}, which no entry may)"


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a string; give {what}")
    return value


def check_image(value: object, *, allow_digest: bool = True) -> str:
    """An image reference by Docker's grammar; `allow_digest=False` for an image to push."""
    text = _text(value, "an image reference such as registry.example.com/team/app:1.0")
    match = IMAGE_REFERENCE.match(text)
    if not match or len(text.split("@")[0].rsplit(":", 1)[0]) > 255:
        raise ValueError(
            f"{shown(text)} is not an image reference{_why(text)}: use "
            "[registry[:port]/]path[:tag][@sha256:digest] with a lowercase path, "
            "e.g. registry.example.com/team/app:1.0"
        )
    if match.group("digest") and not allow_digest:
        raise ValueError(f"{shown(text)} names a digest; an image to push needs a tag, not @digest")
    return text


def check_apt_package(value: object) -> str:
    text = _text(value, "a Debian package name")
    if len(text) > MAX_ENTRY or not APT_PACKAGE.match(text):
        raise ValueError(
            f"{shown(text)} is not a Debian package{_why(text)}: use name, name=version, "
            "name:arch or name/release, e.g. curl or curl=7.88.1-10 (lowercase name)"
        )
    return text


def check_yum_package(value: object) -> str:
    text = _text(value, "an RPM package name")
    if len(text) > MAX_ENTRY or not YUM_PACKAGE.match(text):
        raise ValueError(
            f"{shown(text)} is not an RPM package{_why(text)}: use name or name-version, "
            "e.g. curl or curl-7.29.0"
        )
    return text


def check_pip_requirement(value: object) -> str:
    """A PEP 508 name with extras and version specifiers only (spaces removed); no URLs,
    markers or pip options."""
    text = _text(value, "a pip requirement").strip().replace(" ", "")
    if len(text) > MAX_ENTRY or not PIP_REQUIREMENT.match(text):
        hint = " (options such as -e or --index-url go in pip's own fields)"
        raise ValueError(
            f"{shown(value)} is not a pip requirement{_why(text)}: use NAME, NAME==VERSION or "
            f"NAME[extra]>=1,<2, e.g. numpy==1.21.0{hint if text.startswith('-') else ''}"
        )
    return text


def pip_name(requirement: str) -> str:
    """The canonical project name (PEP 503) of a checked requirement."""
    match = PIP_REQUIREMENT.match(requirement)
    assert match is not None
    return re.sub(r"[-_.]+", "-", match.group("name")).lower()


def package_name(entry: str) -> str:
    """The name part of an apt/yum/conda entry, for spotting one listed twice."""
    return re.split(r"[=<>!~:/]", entry.split("::")[-1], maxsplit=1)[0].lower()


def check_conda_spec(value: object) -> str:
    text = _text(value, "a conda package spec")
    if len(text) > MAX_ENTRY or not CONDA_SPEC.match(text):
        raise ValueError(
            f"{shown(text)} is not a conda package spec{_why(text)}: use name, name=version "
            "or channel::name>=version, e.g. numpy=1.21"
        )
    return text


def check_url(value: object, *, what: str = "an index URL") -> str:
    text = _text(value, what)
    if len(text) > 512 or not URL.match(text):
        raise ValueError(
            f"{shown(text)} is not {what}{_why(text)}: use http(s)://host[:port]/path without "
            "credentials, query or spaces, e.g. https://pypi.org/simple"
        )
    return text


def check_conda_channel(value: object) -> str:
    text = _text(value, "a conda channel")
    if text.startswith(("http://", "https://")):
        return check_url(text, what="a conda channel URL")
    if len(text) > MAX_ENTRY or not CONDA_CHANNEL.match(text):
        raise ValueError(
            f"{shown(text)} is not a conda channel{_why(text)}: use a name such as conda-forge "
            "or an http(s) URL"
        )
    return text


def check_trusted_host(value: object) -> str:
    text = _text(value, "a host name")
    if len(text) > 255 or not HOST.match(text):
        raise ValueError(f"{shown(text)} is not a host[:port]{_why(text)}, e.g. pypi.example.com")
    return text


def check_install_loc(value: object) -> str:
    text = _text(value, "an absolute directory")
    text = text.rstrip("/") or "/"
    parts = text.split("/")
    if len(text) > 255 or not INSTALL_LOC.match(text) or {".", ".."} & set(parts):
        raise ValueError(
            f"{shown(value)} is not an absolute directory{_why(text)}: use letters, digits and "
            "._- between slashes, e.g. /opt/venv (no .. or spaces)"
        )
    if text in SYSTEM_DIRS:
        raise ValueError(f"{shown(text)} is a system directory; use a directory of its own, e.g. "
                         "/opt/venv")  # fmt: skip
    return text


def check_python_version(value: object) -> str:
    """`3`, `3.8` or `python3.8`, normalized to `3` / `3.8`; Python 2 has no venv."""
    text = _text(value, "a Python version such as 3.11")
    match = PYTHON_VERSION.match(text)
    if not match:
        raise ValueError(f"{shown(text)} is not a Python version{_why(text)}: use e.g. 3.11")
    if match.group("major") != "3":
        raise ValueError(
            f"{shown(text)}: only Python 3 is supported (packages go into a venv, which Python "
            "2 cannot make); use e.g. 3.11"
        )
    minor = match.group("minor")
    return f"3.{int(minor)}" if minor is not None else "3"


def check_label_key(value: object) -> str:
    text = _text(value, "a label key")
    if not LABEL_KEY.match(text):
        raise ValueError(
            f"{shown(text)} is not a label key{_why(text)}: use lowercase letters, digits, . "
            "and -, e.g. org.example.team"
        )
    if text == "maintainer" or text.startswith("slipway."):
        raise ValueError(f"label {shown(text)} is set by slipway; pick another key")
    return text


def check_label_value(value: object, *, what: str = "a label value") -> str:
    text = _text(value, what)
    if not LABEL_VALUE.match(text):
        raise ValueError(
            f"{shown(text)} is not {what}{_why(text)}: up to 256 letters, digits, spaces and "
            "._:/@+=,%<>()#- (no quotes, $, backslashes or newlines)"
        )
    return text


def check_task_name(value: object) -> str:
    text = _text(value, "a task name")
    if not TASK_NAME.match(text):
        raise ValueError(
            f"{shown(text)} is not a task name{_why(text)}: up to 255 letters, digits and "
            "._@+:-, starting with a letter or digit"
        )
    return text


def check_callback_url(value: object) -> str:
    text = _text(value, "an http(s) URL")
    parts = urllib.parse.urlsplit(text) if text.isprintable() and " " not in text else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{shown(text)} is not an http(s) URL, e.g. https://ci.example.com/hook")
    if len(text) > 2048:
        raise ValueError("the callback URL is longer than 2048 characters")
    return text


def check_mirror_type(value: object) -> str:
    text = _text(value, "a mirror type such as ali")
    if not MIRROR_TYPE.match(text):
        raise ValueError(
            f"{shown(text)} is not a mirror type{_why(text)}: 1-32 lowercase letters, digits, "
            "_ or -, e.g. ali, 163, qinghua"
        )
    return text


def check_mirror_file_name(value: object) -> str:
    text = _text(value, "a file name such as ubuntu-18.04.list")
    if not MIRROR_FILE_NAME.match(text):
        raise ValueError(
            f"{shown(text)} is not a mirror file name{_why(text)}: NAME.list for apt or "
            "NAME.repo for yum, e.g. ubuntu-18.04.list or centos-7.repo"
        )
    return text


def mirror_manager(file_name: str) -> str:
    """apt for a `.list` profile, yum for a `.repo` one."""
    return "apt" if file_name.endswith(".list") else "yum"
