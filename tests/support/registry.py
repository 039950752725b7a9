"""Real Docker registries for tests: distribution's `docker-registry` (Debian's, 2.8) on loopback.

`registry` (session fixture) is one with htpasswd auth (bcrypt), as a plain registry:2 runs:

    registry.address                 "127.0.0.1:5000" (the next free 127.0.0.1:50X0 when another
                                     test session holds 5000); Docker trusts 127.0.0.0/8 over http
    registry.url                     "http://127.0.0.1:5000"
    registry.username, .password     a robot-style account, "robot$slipway" (the `$` on purpose)
    registry.add_user(name, pw)      appended to the htpasswd file (distribution reloads it)
    registry.stop(); registry.start()            a registry that is down, then up again
    registry.tags(repo) -> list[str]             read over plain HTTP as the robot account
    registry.manifest_digest(repo, tag) -> str | None
    registry.push(repo, tag) -> str  local/busybox:1 pushed as repo:tag with the Docker SDK
                                     (auth_config), the local tag removed again; the digest
    registry.storage                 its storage directory (`delete: enabled: true`)

`RegistryServer(directory, port=…, host=…, tls=(cert, key), storage=…)` runs more of them: on
another address, over https, in front of the same storage (see test_registries_tls.py).

`token_registry` (session fixture) is a second instance on the next port with distribution's
`auth: token` (realm, service, issuer, rootcertbundle) — Harbor's way — in front of the same
storage, so what was pushed to `registry` is there too. Its token service runs in the test
process (`TokenService`: a threading HTTP server issuing RS256 JWTs signed by a test key whose
self-signed certificate is the rootcertbundle and travels in the JWT `x5c` header); it knows
the same users, records each request (`requests`: scope, service, account, user) and grants
nobody in `no_access` any action.

Both skip with the reason when /usr/bin/docker-registry is missing and we are not root (as
root it is installed, as scripts/test-services.sh does).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.process import stop_process

BINARY = "/usr/bin/docker-registry"
HOST = "127.0.0.1"
FIRST_PORT = 5000
PORT_STEP = 10  # port and port + 1 (the token registry) per test session
PORT_BLOCKS = 10
USERNAME = "robot$slipway"
SERVICE = "slipway-test-registry"
ISSUER = "slipway-test-token-issuer"
START_TIMEOUT = 15.0
LOCK_DIR = Path("/tmp")
SOURCE_IMAGE = "local/busybox:1"
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )
)


class RegistryBusyError(RuntimeError):
    """Another test session (or a stale registry) holds this port."""


def _die_with_parent() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def bcrypt_line(name: str, password: str) -> str:
    """One htpasswd line with a bcrypt hash (`htpasswd -B`; the only kind distribution reads)."""
    if shutil.which("htpasswd"):
        made = subprocess.run(
            ["htpasswd", "-niB", name],
            input=password,
            capture_output=True,
            text=True,
            check=True,
        )
        return made.stdout.strip()
    import bcrypt

    return f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}"


class RegistryServer:
    """One `docker-registry serve` on HOST:port; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int,
        host: str = HOST,
        storage: Path | None = None,
        auth: dict[str, Any] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.tls = tls  # (certificate, key) files: serve https
        self.storage = storage or directory / "storage"
        self.username = USERNAME
        self.password = "pw-" + secrets.token_urlsafe(12)
        self.htpasswd = directory / "htpasswd"
        self._auth = auth
        self._users: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def log_path(self) -> Path:
        return self.directory / "registry.log"

    @property
    def users(self) -> dict[str, str]:
        return dict(self._users)

    # --- running ----------------------------------------------------------------------------------

    def claim(self) -> None:
        """Hold this port for the session (a lock file the kernel drops if we die)."""
        self._lock = open(LOCK_DIR / f"slipway-registry-{self.host}-{self.port}.lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise RegistryBusyError(f"another test session holds {self.address}") from None
        if not _port_is_free(self.host, self.port):
            self.release()
            raise RegistryBusyError(f"{self.address} is in use")

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def start(self) -> None:
        """Start the registry and wait until it answers; its users survive a restart."""
        if self.process is not None and self.process.poll() is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        if not self._users:
            self.add_user(self.username, self.password)
        config = self.directory / "config.yml"
        config.write_text(json.dumps(self._config(), indent=2))  # YAML reads JSON
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [BINARY, "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited at start:\n{self._tail()}")
            try:
                httpx.get(f"{self.url}/v2/", timeout=1, verify=False)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer within {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process)
        self.process = None

    def _config(self) -> dict[str, Any]:
        auth = self._auth or {"htpasswd": {"realm": "slipway-test", "path": str(self.htpasswd)}}
        http: dict[str, Any] = {"addr": self.address, "secret": "slipway-test-registry-secret"}
        if self.tls:
            http["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        return {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
            "auth": auth,
        }

    def _tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def add_user(self, name: str, password: str) -> None:
        """Let `name` log in with `password` (the registry rereads the file when it changes)."""
        self._users[name] = password
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [bcrypt_line(user, secret) for user, secret in self._users.items()]
        temporary = self.htpasswd.with_suffix(".tmp")
        temporary.write_text("\n".join(lines) + "\n")
        os.replace(temporary, self.htpasswd)

    # --- looking at what it holds (plain HTTP, not slipway's client) -----------------------------

    def _get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(
            f"{self.url}{path}",
            auth=(self.username, self.password),
            headers=headers,
            timeout=10,
            verify=False,
        )

    def tags(self, repository: str) -> list[str]:
        response = self._get(f"/v2/{repository}/tags/list")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return list(response.json().get("tags") or [])

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        response = self._get(f"/v2/{repository}/manifests/{tag}", Accept=MANIFEST_ACCEPT)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.headers.get("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(response.content).hexdigest()
        )

    def push(self, repository: str, tag: str, *, source: str = SOURCE_IMAGE) -> str:
        """`source` pushed here as repository:tag through the Docker engine; its digest."""
        import docker

        client = docker.from_env()
        target = f"{self.address}/{repository}"
        try:
            client.images.get(source).tag(target, tag)
            chunks = client.api.push(
                target,
                tag=tag,
                auth_config={"username": self.username, "password": self.password},
                stream=True,
                decode=True,
            )
            digest = None
            for chunk in chunks:
                if chunk.get("error"):
                    raise RuntimeError(f"push of {target}:{tag} failed: {chunk['error']}")
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = aux["Digest"]
            assert digest is not None, f"the push of {target}:{tag} reported no digest"
            return str(digest)
        finally:
            client.images.remove(f"{target}:{tag}", noprune=True)
            client.close()


# --- the Bearer token service -----------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """A token server as Harbor's: basic auth in, an RS256 JWT with the granted access out."""

    def __init__(self, directory: Path, users: dict[str, str]) -> None:
        self.users = users
        self.no_access: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate = _self_signed(self.key)
        self.cert_path = directory / "token-issuer.pem"
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/token"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def issue(self, subject: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        # distribution checks the x5c chain against its rootcertbundle: the cert itself here.
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def _user(self, authorization: str) -> str | None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            name, _, password = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return name if self.users.get(name) == password else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                parts = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parts.query)
                user = service._user(self.headers.get("Authorization", ""))
                scopes = query.get("scope", [])
                service.requests.append(
                    {
                        "user": user,
                        "service": query.get("service", [None])[0],
                        "account": query.get("account", [None])[0],
                        "scope": scopes[0] if len(scopes) == 1 else scopes or None,
                    }
                )
                if parts.path != "/token":
                    self._answer(404, {"errors": [{"message": "not found"}]})
                elif user is None:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                else:
                    access = [] if user in service.no_access else _granted(scopes)
                    token = service.issue(user, access)
                    self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


def _granted(scopes: list[str]) -> list[dict[str, Any]]:
    """Every action asked for (`repository:name:pull,push`) on every repository."""
    access = []
    for scope in scopes:
        for item in scope.split(" "):
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
    return access


def _self_signed(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


class TokenRegistry(RegistryServer):
    """A registry behind `auth: token` with its token service; see the module docstring."""

    def __init__(self, directory: Path, *, port: int, basic: RegistryServer) -> None:
        self.tokens = TokenService(directory, {basic.username: basic.password})
        super().__init__(
            directory,
            port=port,
            storage=basic.storage,
            auth={
                "token": {
                    "realm": self.tokens.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(self.tokens.cert_path),
                }
            },
        )
        self.username, self.password = basic.username, basic.password
        self._users = {basic.username: basic.password}

    def add_user(self, name: str, password: str) -> None:
        self._users[name] = password
        self.tokens.users[name] = password

    def _get(self, path: str, **headers: str) -> httpx.Response:
        """A request with a token minted here (the service's own key), pull on the repository."""
        repository = _repository_of(path)
        access = [{"type": "repository", "name": repository, "actions": ["pull"]}]
        token = self.tokens.issue(self.username, access if repository else [])
        return httpx.get(
            f"{self.url}{path}", headers={**headers, "Authorization": f"Bearer {token}"}, timeout=10
        )


def _repository_of(path: str) -> str:
    """`ns/app` of /v2/ns/app/manifests/1 or /v2/ns/app/tags/list; "" for /v2/ itself."""
    inner = path[len("/v2/") :]
    for marker in ("/manifests/", "/tags/"):
        if marker in inner:
            return inner.split(marker)[0]
    return ""


# --- fixtures ---------------------------------------------------------------------------------


def local_ipv4() -> str | None:
    """An address of this machine that is not loopback (Docker and slipway verify TLS there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def unavailable_reason() -> str | None:
    """Why no registry can run here (after installing it as root), or None."""
    if os.path.exists(BINARY):
        return None
    if os.geteuid() != 0:
        return f"{BINARY} is missing and we are not root: apt-get install docker-registry"
    apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "docker-registry", "apache2-utils"]
    if subprocess.run(install, env=apt, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=apt, capture_output=True)
        subprocess.run(install, env=apt, capture_output=True)
    # The package starts its own instance on :5000 (as scripts/test-services.sh, stop it).
    for command in (
        ["systemctl", "disable", "--now", "docker-registry.service"],
        ["/etc/init.d/docker-registry", "stop"],
        ["update-rc.d", "docker-registry", "disable"],
    ):
        if shutil.which(command[0]) or os.path.exists(command[0]):
            subprocess.run(command, capture_output=True)
    if not os.path.exists(BINARY):
        return f"{BINARY} is missing and apt-get install docker-registry failed"
    return None


def start_registry(base_dir: Path) -> RegistryServer:
    """A started htpasswd registry on the first free 127.0.0.1:50X0."""
    for block in range(PORT_BLOCKS):
        port = FIRST_PORT + block * PORT_STEP
        server = RegistryServer(base_dir / f"registry-{port}", port=port)
        try:
            server.claim()
        except RegistryBusyError:
            continue
        try:
            server.start()
        except BaseException:
            server.release()
            raise
        return server
    raise RegistryBusyError(f"ports {FIRST_PORT}..{FIRST_PORT + PORT_STEP * PORT_BLOCKS} are taken")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A real registry with htpasswd auth for the whole session (see the module docstring)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()
        server.release()


@pytest.fixture(scope="session")
def token_registry(
    registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TokenRegistry]:
    """A second registry, behind a Bearer token service, on `registry`'s port + 1."""
    server = TokenRegistry(
        tmp_path_factory.mktemp("token-registry"), port=registry.port + 1, basic=registry
    )
    server.tokens.start()
    try:
        server.claim()
        server.start()
        yield server
    finally:
        server.stop()
        server.release()
        server.tokens.stop()
