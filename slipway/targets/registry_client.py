"""The Docker registry HTTP API v2 as slipway uses it: log in, read manifests and tags.

Errors:

    RegistryError                 502 registry_error        an answer that is not a registry's
    ├── RegistryUnreachableError  502 registry_unreachable  refused, timed out, or TLS failed
    └── RegistryDeniedError       502 registry_denied       logged in, but may not read that
    RegistryAuthError             422 registry_auth_failed  username and password refused;
                                                            details name the field `password`

Logging in follows Docker's client. `GET /v2/` answers 401 with a challenge in
`WWW-Authenticate`: `Basic realm=…` → the same request again with basic auth; `Bearer
realm=…,service=…` → `GET realm?service=…&scope=…` with basic auth gives a token, sent as
`Authorization: Bearer` (Harbor, GitLab, Docker Hub). A token is fetched per scope
(`repository:<repo>:pull`) and kept for the life of the client.

A client belongs to one job or request and is never shared: `with RegistryClient(login) as c`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from slipway.core.errors import ExternalServiceError, InputError

# What slipway accepts when it reads a manifest: Docker v2 and OCI, single images and lists.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
# distribution's grammar of repository names and tags (reference/regexp.go).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_PATTERN = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_PATTERN = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_PATTERN = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
MAX_TAG_PAGES = 100
TAGS_PAGE = 1000


class RegistryError(ExternalServiceError):
    """The registry answered, but not as a Docker registry should."""

    default_code = "registry_error"


class RegistryUnreachableError(RegistryError):
    """No answer from the registry (or its token service): refused, timed out, or TLS failed."""

    default_code = "registry_unreachable"


class RegistryDeniedError(RegistryError):
    """The login worked but the registry does not let this account read the repository."""

    default_code = "registry_denied"


class RegistryAuthError(InputError):
    """The registry (or its token service) refused the username and password."""

    default_code = "registry_auth_failed"


@dataclass(frozen=True)
class RegistryLogin:
    """How to log in to a registry, password decrypted: for a worker about to push or read.

    `server` is host[:port] as Docker wants it (auth_config's serveraddress, `docker login`);
    `base_url` holds the scheme that worked; `verify` whether TLS certificates are checked.
    """

    server: str
    username: str
    password: str = field(repr=False)
    base_url: str
    verify: bool = True


@dataclass(frozen=True)
class Manifest:
    """An image manifest as the registry holds it.

    `size` is the image's size: the config plus every layer (compressed, as pushed). For a
    multi-platform index it is the sum of the listed manifests' own sizes, not of their layers.
    """

    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class RegistryCheck:
    """What a login found: the address that answered and how it wanted to be logged in to."""

    base_url: str
    auth_scheme: str  # "basic", "bearer" or "none"
    api_version: str | None


def parse_challenge(header: str) -> tuple[str, dict[str, str]] | None:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        match.group(1).lower(): (
            match.group(2) if match.group(2) is not None else match.group(3)
        ).replace('\\"', '"')
        for match in _CHALLENGE_PARAM.finditer(rest)
    }
    return scheme.lower(), params


def check_repository(repository: str) -> str:
    if len(repository) > 255 or not REPOSITORY_PATTERN.match(repository):
        raise InputError(
            f"repository {repository[:80]!r} is not a repository name: lowercase parts such as "
            "project/app, without the registry host or the tag",
            field="repository",
        )
    return repository


def check_reference(reference: str) -> str:
    if not (TAG_PATTERN.match(reference) or DIGEST_PATTERN.match(reference)):
        raise InputError(
            f"reference {reference[:80]!r} is neither a tag (e.g. 1.0) nor a digest (sha256:…)",
            field="reference",
        )
    return reference


def _unreachable(what: str, url: str, error: httpx.TransportError) -> RegistryUnreachableError:
    reason = str(error) or type(error).__name__
    hint = "check the address and that the registry runs"
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        hint = (
            "its TLS certificate is not trusted: install its CA on this machine, or set "
            "insecure to true to skip the check"
        )
    return RegistryUnreachableError(
        f"cannot reach {what} at {url}: {reason}; {hint}", details={"url": url}
    )


class RegistryClient:
    """One login session with a registry; see the module docstring."""

    def __init__(self, login: RegistryLogin, timeout: float = 10) -> None:
        self.login = login
        self.auth_scheme = "none"
        self._http = httpx.Client(
            base_url=login.base_url,
            verify=login.verify,
            timeout=timeout,
            follow_redirects=True,
            headers={"User-Agent": "slipway", "Docker-Distribution-Api-Version": "registry/2.0"},
        )
        # Once the registry asked for Basic, every request carries it (as Docker does).
        self._uses_basic = False
        self._tokens: dict[str, str] = {}

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- the API --------------------------------------------------------------------------------

    def check(self) -> RegistryCheck:
        """Log in: `GET /v2/` answered 200 with these credentials."""
        response = self._request("GET", "/v2/", scope="")
        if response.status_code != 200:
            raise self._bad_answer(response, "the API check GET /v2/")
        # A registry behind a redirect (http → https) is reached at its final address.
        final = str(response.url)
        base_url = final[: -len("/v2/")] if final.endswith("/v2/") else self.login.base_url
        return RegistryCheck(
            base_url=base_url,
            auth_scheme=self.auth_scheme,
            api_version=response.headers.get("Docker-Distribution-Api-Version"),
        )

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest of `repository:reference` (a tag or a digest); None if there is none."""
        check_repository(repository)
        check_reference(reference)
        response = self._request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return None
        if response.status_code == 403:
            raise self._denied(f"repository:{repository}:pull")
        if response.status_code != 200:
            raise self._bad_answer(response, f"the manifest of {repository}:{reference}")
        return self._parse_manifest(response, f"{repository}:{reference}")

    def tags(self, repository: str) -> list[str]:
        """Every tag of `repository`, in the registry's order; [] when it does not exist."""
        check_repository(repository)
        scope = f"repository:{repository}:pull"
        path: str | None = f"/v2/{repository}/tags/list?n={TAGS_PAGE}"
        found: list[str] = []
        for _ in range(MAX_TAG_PAGES):
            if path is None:
                break
            response = self._request("GET", path, scope=scope)
            if response.status_code == 404:
                return found
            if response.status_code == 403:
                raise self._denied(scope)
            if response.status_code != 200:
                raise self._bad_answer(response, f"the tags of {repository}")
            try:
                found.extend(response.json().get("tags") or [])
            except (ValueError, AttributeError):
                raise RegistryError(
                    f"{self.login.server} answered the tags of {repository} with no tag list"
                ) from None
            path = response.links.get("next", {}).get("url")
        return found

    # --- requests and logging in ----------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TransportError as error:
            raise _unreachable("the registry", self.login.base_url, error) from None

    def _auth_header(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._uses_basic:
            pair = f"{self.login.username}:{self.login.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        return {}

    def _request(
        self, method: str, path: str, *, scope: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """`method path`, answering the registry's 401 challenge once (a new token, or basic)."""
        headers = dict(headers or {})
        response = self._send(method, path, headers={**headers, **self._auth_header(scope)})
        if response.status_code != 401:
            return response
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is not None and challenge[0] == "bearer":
            self._tokens[scope] = self._fetch_token(challenge[1], scope)
            self.auth_scheme = "bearer"
        elif challenge is not None and challenge[0] == "basic" and not self._uses_basic:
            self._uses_basic = True
            self.auth_scheme = "basic"
        elif challenge is not None and challenge[0] == "basic":
            raise self._auth_refused()
        else:
            raise RegistryError(
                f"{self.login.server} wants a login slipway does not know "
                f"({response.headers.get('WWW-Authenticate') or 'no WWW-Authenticate header'}); "
                "it speaks Basic and Bearer (token) auth"
            )
        response = self._send(method, path, headers={**headers, **self._auth_header(scope)})
        if response.status_code != 401:
            return response
        if self.auth_scheme == "basic":
            raise self._auth_refused()
        # The token service took the password but the registry refused the fresh token: for a
        # repository the account lacks rights; for /v2/ itself the login does not work.
        if scope:
            raise self._denied(scope)
        raise self._auth_refused()

    def _fetch_token(self, challenge: dict[str, str], scope: str) -> str:
        realm = challenge.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(
                f"{self.login.server} asks for a Bearer token without a usable realm ({realm!r})"
            )
        params = {"account": self.login.username}
        if challenge.get("service"):
            params["service"] = challenge["service"]
        if scope:
            params["scope"] = scope
        try:
            response = self._http.get(
                realm, params=params, auth=(self.login.username, self.login.password)
            )
        except httpx.TransportError as error:
            raise _unreachable("the registry's token service", realm, error) from None
        if response.status_code in (401, 403):
            raise self._auth_refused()
        if response.status_code != 200:
            raise self._bad_answer(response, f"the token request to {realm}")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token service {realm} answered without a token")
        return token

    # --- answers --------------------------------------------------------------------------------

    def _auth_refused(self) -> RegistryAuthError:
        return RegistryAuthError(
            f"{self.login.server} refused the login of {self.login.username!r}: check the "
            "password (or robot token) and the username",
            details={"field": "password", "registry": self.login.server},
        )

    def _denied(self, scope: str) -> RegistryDeniedError:
        return RegistryDeniedError(
            f"{self.login.server} does not let {self.login.username!r} pull "
            f"{scope.split(':')[1]}: give the account pull rights on that repository",
            details={"scope": scope},
        )

    def _bad_answer(self, response: httpx.Response, what: str) -> RegistryError:
        if response.status_code == 404 and response.request.url.path == "/v2/":
            return RegistryError(
                f"{self.login.base_url} has no registry API (/v2/ answered 404): is it the "
                "registry's address?",
                code="registry_not_a_registry",
            )
        excerpt = " ".join(response.text[:200].split())
        return RegistryError(
            f"{self.login.server} answered {what} with HTTP {response.status_code}"
            + (f": {excerpt}" if excerpt else ""),
            details={"status": response.status_code},
        )

    def _parse_manifest(self, response: httpx.Response, what: str) -> Manifest:
        body = response.content
        try:
            document = json.loads(body)
        except ValueError:
            raise RegistryError(f"the manifest of {what} is not JSON") from None
        if not isinstance(document, dict):
            raise RegistryError(f"the manifest of {what} is not a JSON object")
        media_type = document.get("mediaType") or response.headers.get("Content-Type", "")
        media_type = media_type.split(";")[0].strip()
        digest = response.headers.get("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(body).hexdigest()
        )
        try:
            if media_type in INDEX_TYPES:
                size = sum(int(entry["size"]) for entry in document.get("manifests") or [])
            else:
                parts = [document["config"], *(document.get("layers") or [])]
                size = sum(int(part["size"]) for part in parts)
        except (KeyError, TypeError, ValueError):
            raise RegistryError(
                f"the manifest of {what} ({media_type or 'no media type'}) lacks sizes"
            ) from None
        return Manifest(digest=digest, size=size, media_type=media_type)


def discover(
    candidates: list[tuple[str, bool]],
    *,
    server: str,
    username: str,
    password: str,
    timeout: float = 10,
) -> tuple[RegistryLogin, RegistryCheck]:
    """Log in at the first of `candidates` (base URL, verify TLS) that answers, as Docker tries
    https before http; the login holds the address that worked."""
    failures: list[RegistryUnreachableError] = []
    for base_url, verify in candidates:
        login = RegistryLogin(
            server=server, username=username, password=password, base_url=base_url, verify=verify
        )
        try:
            with RegistryClient(login, timeout=timeout) as client:
                found = client.check()
        except RegistryUnreachableError as error:
            failures.append(error)
            continue
        return replace(login, base_url=found.base_url), found
    if len(failures) == 1:
        raise failures[0]
    raise RegistryUnreachableError(
        f"cannot reach the registry {server}: "
        + "; ".join(error.message.split(";")[0] for error in failures)
        + "; check the address and that the registry runs",
        details={"tried": [url for url, _ in candidates]},
    )
