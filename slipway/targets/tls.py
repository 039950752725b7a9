"""TLS material for Docker endpoints: three PEM files or one tar bundle, checked before saving.

A bundle is FastBuild's format: a tar (optionally gzip-compressed) holding exactly `ca.pem`,
`cert.pem` and `key.pem` at its top level. Anything else in it is refused, naming the member.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from slipway.core.db import utcnow
from slipway.core.errors import InputError
from slipway.remote.docker import TLSMaterial

MAX_UPLOAD_BYTES = 1 << 20
MAX_BUNDLE_MEMBERS = 16
# Bundle member -> the form field the same file arrives in when uploaded on its own.
BUNDLE_FILES = {"ca.pem": "ca", "cert.pem": "cert", "key.pem": "key"}
BUNDLE_HINT = (
    "a bundle holds only ca.pem, cert.pem and key.pem at its top level "
    "(`tar cf tls.tar ca.pem cert.pem key.pem`)"
)


@dataclass(frozen=True)
class TLSUpload:
    """TLS material as it arrived, unchecked: three PEM files, or one tar bundle."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    bundle: bytes | None = None

    @property
    def is_empty(self) -> bool:
        return self.ca is None and self.cert is None and self.key is None and self.bundle is None


@dataclass(frozen=True)
class CheckedTLS:
    """Material that parses, whose key belongs to its certificate, and what to record of it."""

    material: TLSMaterial
    ca_fingerprint: str
    cert_fingerprint: str
    expires_at: datetime


def too_large(field: str) -> InputError:
    return InputError(
        f"{field} is larger than {MAX_UPLOAD_BYTES >> 20} MiB: a CA, certificate and key take a "
        "few KiB; check that you picked the right file",
        field=field,
        code="upload_too_large",
    )


def read_upload(upload: TLSUpload) -> CheckedTLS | None:
    """The checked material of `upload`, or None when it holds none."""
    if upload.is_empty:
        return None
    if upload.bundle is not None:
        if upload.ca is not None or upload.cert is not None or upload.key is not None:
            raise InputError(
                "send either tls_bundle or the three files ca, cert and key, not both",
                field="tls_bundle",
                code="invalid_tls_material",
            )
        files = read_bundle(upload.bundle)
        return check_material(ca=files["ca"], cert=files["cert"], key=files["key"])
    given = {"ca": upload.ca, "cert": upload.cert, "key": upload.key}
    missing = [field for field, data in given.items() if data is None]
    if missing:
        raise InputError(
            f"TLS needs all three of ca, cert and key; {' and '.join(missing)} missing: upload "
            "the engine's CA certificate, the client certificate and the client key together "
            "(or one tls_bundle)",
            field=missing[0],
            code="invalid_tls_material",
        )
    assert upload.ca is not None and upload.cert is not None and upload.key is not None
    return check_material(ca=upload.ca, cert=upload.cert, key=upload.key)


def _bundle_error(message: str, member: str | None = None) -> InputError:
    details: dict[str, str] = {"field": "tls_bundle"}
    if member is not None:
        details["member"] = member
    return InputError(message, code="invalid_tls_bundle", details=details)


def _member_name(member: tarfile.TarInfo) -> str | None:
    """The file name a member stands for, None for the top directory itself; or refuse it."""
    name = member.name
    if name.startswith("/"):
        raise _bundle_error(
            f"tls_bundle member {name!r} has an absolute path: {BUNDLE_HINT}", member=name
        )
    parts = PurePosixPath(name).parts
    if ".." in parts:
        raise _bundle_error(
            f"tls_bundle member {name!r} points outside the bundle (`..`): {BUNDLE_HINT}",
            member=name,
        )
    if not parts or parts == (".",):
        if member.isdir():
            return None
        raise _bundle_error(f"tls_bundle member {name!r} has no name: {BUNDLE_HINT}", member=name)
    if parts[0] == ".":
        parts = parts[1:]
    clean = "/".join(parts)
    if clean not in BUNDLE_FILES:
        raise _bundle_error(
            f"tls_bundle holds an unexpected member {name!r}: {BUNDLE_HINT}",
            member=name,
        )
    if not member.isfile():
        raise _bundle_error(
            f"tls_bundle member {name!r} is not a regular file (a link or device): {BUNDLE_HINT}",
            member=name,
        )
    if member.size > MAX_UPLOAD_BYTES:
        raise _bundle_error(
            f"tls_bundle member {name!r} is larger than {MAX_UPLOAD_BYTES >> 20} MiB: "
            f"{BUNDLE_HINT}",
            member=name,
        )
    return clean


def read_bundle(data: bytes) -> dict[str, bytes]:
    """{"ca", "cert", "key"} -> bytes, from a tar holding ca.pem, cert.pem and key.pem."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_large("tls_bundle")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for count, member in enumerate(archive, start=1):
                if count > MAX_BUNDLE_MEMBERS:
                    raise _bundle_error(
                        f"tls_bundle has more than {MAX_BUNDLE_MEMBERS} members: {BUNDLE_HINT}"
                    )
                name = _member_name(member)
                if name is None:
                    continue
                field = BUNDLE_FILES[name]
                if field in files:
                    raise _bundle_error(
                        f"tls_bundle holds {member.name!r} twice: {BUNDLE_HINT}", member=member.name
                    )
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file, checked above
                files[field] = handle.read()
    except (tarfile.TarError, EOFError, OSError):
        raise _bundle_error(
            f"tls_bundle is not a readable tar archive (plain or gzip): {BUNDLE_HINT}"
        ) from None
    missing = [name for name, field in BUNDLE_FILES.items() if field not in files]
    if missing:
        raise _bundle_error(
            f"tls_bundle lacks {', '.join(missing)}: {BUNDLE_HINT}",
            member=missing[0],
        )
    return files


def _invalid(field: str, message: str) -> InputError:
    return InputError(message, field=field, code="invalid_tls_material")


def _fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _text(field: str, data: bytes) -> str:
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_large(field)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise _invalid(
            field, f"{field} is not PEM text: upload the PEM file (-----BEGIN ...), not DER"
        ) from None


def _public_der(key: PrivateKeyTypes | x509.Certificate) -> bytes:
    public = key.public_key()
    return public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_material(*, ca: bytes, cert: bytes, key: bytes) -> CheckedTLS:
    """Refuse material that does not parse or whose key does not belong to its certificate."""
    ca_text, cert_text, key_text = _text("ca", ca), _text("cert", cert), _text("key", key)
    try:
        ca_certs = x509.load_pem_x509_certificates(ca)
    except ValueError:
        raise _invalid(
            "ca",
            "ca is not a PEM certificate: upload the CA certificate (ca.pem) that signed the "
            "engine's certificate",
        ) from None
    try:
        client_cert = x509.load_pem_x509_certificate(cert)
    except ValueError:
        raise _invalid(
            "cert",
            "cert is not a PEM certificate: upload the client certificate (cert.pem) issued by "
            "the engine's CA",
        ) from None
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except TypeError:
        raise _invalid(
            "key",
            "key is protected by a passphrase: upload it without one "
            "(`openssl pkey -in key.pem -out key-plain.pem`)",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise _invalid(
            "key", "key is not a PEM private key: upload the client's private key (key.pem)"
        ) from None
    if _public_der(private_key) != _public_der(client_cert):
        raise _invalid(
            "key",
            "key does not belong to cert: upload the private key of this client certificate",
        )
    expires_at = client_cert.not_valid_after_utc
    if expires_at <= utcnow():
        raise _invalid(
            "cert",
            f"cert expired on {expires_at:%Y-%m-%d %H:%M} UTC: issue a new client certificate",
        )
    return CheckedTLS(
        material=TLSMaterial(ca_pem=ca_text, cert_pem=cert_text, key_pem=key_text),
        ca_fingerprint=_fingerprint(ca_certs[0]),
        cert_fingerprint=_fingerprint(client_cert),
        expires_at=expires_at,
    )
