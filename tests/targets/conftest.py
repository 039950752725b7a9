"""Fixtures of the target tests: the real Docker engines and sshd hosts they talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.fixtures import cheap_hashes
from tests.conftest import bearer, free_port
from tests.targets.engines import (
    TLSEngine,
    local_engine_problem,
    start_tls_engine,
    tls_engine_problem,
)
from tests.targets.pki import CertificateAuthority, Pair

__all__ = ["cheap_hashes"]


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """The machine's engine at /var/run/docker.sock; the test is skipped when it does not answer."""
    problem = local_engine_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session")
def tls_engine() -> Iterator[TLSEngine]:
    """A second dockerd on tcp://127.0.0.1:PORT that only lets in clients of its own CA."""
    problem = tls_engine_problem()
    if problem:
        pytest.skip(problem)
    engine = start_tls_engine(free_port())
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def stranger() -> Pair:
    """A client certificate and key from a CA the TLS engine does not trust."""
    return CertificateAuthority("a CA nobody trusts").client("stranger")


@pytest.fixture
def auth(cheap_hashes: None, tokens: dict[str, str]) -> dict[str, dict[str, str]]:
    """Authorization headers per role: {"admin": {...}, "operator": {...}, "viewer": {...}}."""
    return {role: bearer(token) for role, token in tokens.items()}
