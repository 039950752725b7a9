"""What an API process carries: the SSH library only once it handles a key or a host, alembic
only to migrate."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

BUILD_THE_APP = """
import sys
from slipway.api.app import create_app
from slipway.core.config import Settings
from slipway.core import schema
from slipway.core.db import get_engine
settings = Settings(data_dir=sys.argv[1])
create_app(settings, run_maintenance=False)
schema.head_revision()  # what every health check reads
with get_engine(settings).connect() as connection:
    schema.current_revision(connection)
print(sorted({"asyncssh", "alembic"} & set(sys.modules)))
"""


def test_an_api_process_loads_asyncssh_and_alembic_only_when_it_first_needs_them(tmp_path):
    # asyncssh is about 16 MB of an idle API's memory (the releases kinds once pulled it in
    # through the deployment runner), alembic about 10 MB (every health check reads the revisions).
    done = subprocess.run(
        [sys.executable, "-c", BUILD_THE_APP, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
