"""WeCube diff variables in config files: `[@name]`, `[&name]`, `[!name]` and `[%name]`.

`@` and `&` take the variable's plain value. `!` and `%` are secrets: the value is written into the
file encrypted with the application's RSA public key (RSA-OAEP, SHA-256 for hash and MGF1,
base64), so only the application can read it. Names are WeCube's word characters, starting with a
letter or `_` (so log patterns such as `[%5p]` stay text), and match case-insensitively. Values
are inserted literally: a placeholder inside a value is never expanded.

Logging patterns such as logback's `[%thread]` look exactly like secret placeholders; callers pass
such names in `literal` to leave them as written.

A secret longer than one RSA-OAEP block (key bytes - 66: 318 bytes for a 3072-bit key) is refused
with `secret_too_long` rather than wrapped in a hybrid envelope, because every application would
then need slipway's envelope format to read its own config; the WeCube contract is one RSA block.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from slipway.core.errors import InputError

SECRET_SIGILS = frozenset("!%")
_PLACEHOLDER = re.compile(r"\[([@&!%])([A-Za-z_][A-Za-z0-9_]*)\]")
_MIN_KEY_BITS = 2048
_OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)


@dataclass(frozen=True)
class Placeholder:
    """One `[<sigil><name>]` in a file; `key` is the casefolded name variables are matched on."""

    sigil: str
    name: str
    key: str
    is_secret: bool


def find_placeholders(text: str, *, literal: Collection[str] = ()) -> list[Placeholder]:
    """Every placeholder in `text`, in order, repeats included; `literal` names are skipped."""
    skip = {name.casefold() for name in literal}
    found = []
    for match in _PLACEHOLDER.finditer(text):
        sigil, name = match.groups()
        if name.casefold() not in skip:
            found.append(Placeholder(sigil, name, name.casefold(), sigil in SECRET_SIGILS))
    return found


class MissingVariablesError(InputError):
    """Files use variables that have no value; every missing name is listed at once."""

    default_code = "missing_variables"

    def __init__(
        self,
        files: Mapping[str, Iterable[str]],
        *,
        stored_as_secret: Iterable[str] = (),
        from_percent: Iterable[str] = (),
    ) -> None:
        self.missing = sorted(files)
        by_name = {name: sorted(set(files[name])) for name in self.missing}
        hidden = sorted(stored_as_secret)
        listed = "; ".join(f"{name} (in {', '.join(by_name[name])})" for name in self.missing)
        message = (
            f"{len(self.missing)} variable(s) used by the package have no value: {listed}. "
            "Set them on the environment (or as host overrides) and deploy again"
        )
        if hidden:
            message += (
                f". {', '.join(hidden)} are stored as secrets, which are only written encrypted: "
                "reference them as [!name] or [%name]"
            )
        percent = sorted(from_percent)
        if percent:
            message += (
                f". If {', '.join(f'[%{name}]' for name in percent)} is a logging pattern rather "
                "than a variable, list the name among the project's literal placeholders"
            )
        details = {"missing": self.missing, "files": by_name, "stored_as_secret": hidden}
        super().__init__(message, code=self.default_code, details=details)


def _fold(values: Mapping[str, str], field: str) -> dict[str, str]:
    folded: dict[str, str] = {}
    written: dict[str, str] = {}
    for name, value in values.items():
        key = name.casefold()
        if key in written:
            raise InputError(
                f"variables {written[key]!r} and {name!r} differ only in case, and names match "
                "case-insensitively; keep one of them",
                field=field,
                code="duplicate_variable",
            )
        folded[key], written[key] = value, name
    return folded


def merge_variables(*layers: Mapping[str, str]) -> dict[str, str]:
    """Merge layers in rising precedence (environment, then host), keyed case-insensitively."""
    merged: dict[str, str] = {}
    for layer in layers:
        merged.update(_fold(layer, "variables"))
    return merged


def _bad_key(problem: str) -> InputError:
    return InputError(
        f"the application public key {problem}; paste the PEM public key "
        "('-----BEGIN PUBLIC KEY-----', RSA, at least 2048 bits) or generate a key pair",
        field="public_key",
        code="bad_public_key",
    )


def _load_public_key(text: str) -> rsa.RSAPublicKey:
    text = text.strip()
    if "PRIVATE KEY" in text:
        # Never echo it back: a private key pasted by mistake must not reach logs or responses.
        raise _bad_key("is a private key (derive the public one with openssl rsa -pubout)")
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        elif text.startswith("ssh-rsa "):
            key = serialization.load_ssh_public_key(text.encode())
        else:  # the bare base64 body WeCube shows for a key
            key = serialization.load_der_public_key(
                base64.b64decode("".join(text.split()), validate=True)
            )
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
        raise _bad_key("could not be read") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise _bad_key("is not an RSA key")
    if key.key_size < _MIN_KEY_BITS:
        raise _bad_key(f"has only {key.key_size} bits")
    return key


def normalize_public_key(pem: str) -> str:
    """The key as SubjectPublicKeyInfo PEM; refuses anything but an RSA public key of ≥2048 bits."""
    key = _load_public_key(pem)
    encoded = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded.decode("ascii")


def generate_keypair(bits: int = 3072) -> tuple[str, str]:
    """A new (private PKCS#8 PEM, public SubjectPublicKeyInfo PEM) pair for an application."""
    if bits < _MIN_KEY_BITS:
        raise InputError(
            f"an application key of {bits} bits is too weak; use at least {_MIN_KEY_BITS}",
            field="bits",
            code="bad_key_size",
        )
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem.decode("ascii"), public_pem.decode("ascii")


def _encrypt(key: rsa.RSAPublicKey, value: str, name: str) -> str:
    data = value.encode()
    limit = (key.key_size + 7) // 8 - 2 * hashes.SHA256.digest_size - 2
    if len(data) > limit:
        raise InputError(
            f"secret {name} is {len(data)} bytes, but RSA-OAEP with the application's "
            f"{key.key_size}-bit key carries at most {limit}; store a shorter secret (such as a "
            "key that unlocks the rest) or give the application a larger key",
            code="secret_too_long",
            details={"field": "secrets", "name": name, "bytes": len(data), "max_bytes": limit},
        )
    return base64.b64encode(key.encrypt(data, _OAEP)).decode("ascii")


def encrypt_for_app(public_key_pem: str, value: str) -> str:
    """`value` encrypted for the application: base64 of RSA-OAEP-SHA256."""
    return _encrypt(_load_public_key(public_key_pem), value, "value")


def _decode(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _render(
    texts: Mapping[str, str],
    values: Mapping[str, str],
    secrets: Mapping[str, str],
    public_key_pem: str | None,
    literal: Collection[str],
) -> dict[str, str]:
    plain, hidden = _fold(values, "values"), _fold(secrets, "secrets")
    missing: dict[str, set[str]] = {}
    stored_as_secret, from_percent = set(), set()
    needs_key: dict[str, set[str]] = {}
    for filename, text in texts.items():
        for found in find_placeholders(text, literal=literal):
            if found.is_secret:
                needs_key.setdefault(found.key, set()).add(filename)
                if found.key in hidden or found.key in plain:
                    continue
                if found.sigil == "%":
                    from_percent.add(found.key)
            elif found.key in plain:
                continue
            elif found.key in hidden:
                stored_as_secret.add(found.key)
            missing.setdefault(found.key, set()).add(filename)
    if missing:
        raise MissingVariablesError(
            missing, stored_as_secret=stored_as_secret, from_percent=from_percent
        )
    if needs_key and not public_key_pem:
        used = "; ".join(f"{k} (in {', '.join(sorted(f))})" for k, f in sorted(needs_key.items()))
        raise InputError(
            f"the package's files use secret variables ({used}), which are written encrypted "
            "with the application's public key, and this environment has none; set the "
            "environment's application public key, or generate a key pair for it, and deploy again",
            code="no_app_public_key",
            details={"field": "public_key", "secrets": sorted(needs_key)},
        )
    key = _load_public_key(public_key_pem) if needs_key and public_key_pem else None
    skip = {name.casefold() for name in literal}

    def substitute(match: re.Match[str]) -> str:
        sigil, name = match.groups()
        folded = name.casefold()
        if folded in skip:
            return match.group()
        if sigil not in SECRET_SIGILS:
            return plain[folded]
        assert key is not None
        return _encrypt(key, hidden[folded] if folded in hidden else plain[folded], name)

    return {filename: _PLACEHOLDER.sub(substitute, text) for filename, text in texts.items()}


def render_text(
    text: str,
    *,
    values: Mapping[str, str],
    secrets: Mapping[str, str],
    public_key_pem: str | None,
    literal: Collection[str] = (),
    filename: str = "<text>",
) -> str:
    """`text` with every placeholder replaced; raises MissingVariablesError listing all gaps."""
    rendered = _render({filename: text}, values, secrets, public_key_pem, literal)
    return rendered[filename]


def render_files(
    files: Mapping[str, bytes],
    *,
    values: Mapping[str, str],
    secrets: Mapping[str, str],
    public_key_pem: str | None,
    literal: Collection[str] = (),
) -> dict[str, bytes]:
    """Every file rendered; files that are not UTF-8 text (or hold NUL bytes) come back as is.

    All files are checked before any is rendered, so one MissingVariablesError names every
    missing variable across them.
    """
    texts = {name: text for name, data in files.items() if (text := _decode(data)) is not None}
    rendered = _render(texts, values, secrets, public_key_pem, literal)
    return {
        name: rendered[name].encode("utf-8") if name in rendered else data
        for name, data in files.items()
    }


def used_variables(
    files: Mapping[str, bytes], *, literal: Collection[str] = ()
) -> dict[str, list[str]]:
    """Variable key -> the text files that use it, both sorted: what a package needs set."""
    used: dict[str, set[str]] = {}
    for name, data in files.items():
        text = _decode(data)
        for found in find_placeholders(text, literal=literal) if text is not None else []:
            used.setdefault(found.key, set()).add(name)
    return {key: sorted(names) for key, names in sorted(used.items())}
