"""The SSH tests run on the session's sshd farm (`ssh_farm`, registered in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
