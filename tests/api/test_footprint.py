"""What an API process carries: the SSH library only once it handles a key or a host."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

BUILD_THE_APP = """
import sys
from slipway.api.app import create_app
from slipway.core.config import Settings
create_app(Settings(data_dir=sys.argv[1]), run_maintenance=False)
print("asyncssh" in sys.modules)
"""


def test_an_api_process_loads_asyncssh_only_when_it_first_needs_it(tmp_path):
    # About 16 MB of an idle API's memory; the releases kinds once pulled it in through the
    # deployment runner.
    done = subprocess.run(
        [sys.executable, "-c", BUILD_THE_APP, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
