"""Issue 4's figures: install overhead beside `docker-compose up -d` by hand, `GET /apps` with 50
installed apps, and how soon a container killed from outside shows in the API.

Needs a Docker engine and the local/busybox:1 image (`make test` prepares both).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
import httpx
from _common import Instance, Table, finish, free_port, ms, percentile, wait_for

LIBRARY = Path(__file__).resolve().parent.parent / "tests" / "apps" / "library"
STAND_IN = """\
FROM local/busybox:1
RUN mkdir -p /usr/share/nginx/html /etc/nginx/conf.d \\
 && echo stand-in > /usr/share/nginx/html/index.html
CMD ["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"]
STOPSIGNAL SIGKILL
"""
APPS = 50
RUNS = 5


def by_hand(directory: Path, project: str) -> float:
    """`docker-compose up -d` and wait until the container runs healthy, like slipway does."""
    started = time.perf_counter()
    subprocess.run(
        ["docker-compose", "-p", project, "up", "-d"],
        cwd=directory,
        check=True,
        capture_output=True,
    )
    engine = docker.from_env()
    wait_for(
        lambda: "(healthy)" in engine.api.containers(filters={"name": project})[0]["Status"],
        timeout=60,
        what="healthy",
    )
    return time.perf_counter() - started


def install(url: str, headers: dict[str, str], name: str, app: str = "web") -> float:
    started = time.perf_counter()
    answer = httpx.post(
        f"{url}/api/v1/apps",
        headers=headers,
        json={"app": app, "name": name, "settings": {"W9_HTTP_PORT_SET": free_port()}},
    )
    answer.raise_for_status()
    op = answer.json()["operation"]["id"]
    wait_for(
        lambda: (
            httpx.get(f"{url}/api/v1/operations/{op}", headers=headers).json()["status"]
            in ("succeeded", "failed")
        ),
        timeout=120,
        what="install",
    )
    return time.perf_counter() - started


def clean(engine: docker.DockerClient, prefix: str) -> None:
    for container in engine.containers.list(
        all=True, filters={"label": "com.docker.compose.project"}
    ):
        if container.labels.get("com.docker.compose.project", "").startswith(prefix):
            container.remove(force=True)
    for volume in engine.volumes.list():
        if volume.name.startswith(prefix):
            volume.remove(force=True)


def main() -> None:
    started = time.monotonic()
    engine = docker.from_env()
    if not engine.networks.list(names=["slipway-test"]):
        engine.networks.create("slipway-test")
    prefix = f"b{uuid.uuid4().hex[:5]}"
    table = Table("apps on the local engine (postgresql, 1 worker, docker-compose v1)")
    try:
        with Instance("postgresql") as instance:
            instance.env["SLIPWAY_CATALOG_DIRS"] = str(LIBRARY)
            url, _ = instance.api()
            instance.worker("w1")
            slipway_times, hand_times = [], []
            for run in range(RUNS):
                folder = Path(tempfile.mkdtemp(prefix="bench-app-"))
                shutil.copytree(LIBRARY / "web", folder, dirs_exist_ok=True)
                name = f"{prefix}h{run}"
                env = (folder / ".env").read_text().replace("W9_ID='web'", f"W9_ID='{name}'")
                port = free_port()
                (folder / ".env").write_text(env.replace("'9001'", f"'{port}'"))
                hand_times.append(by_hand(folder, name))
                slipway_times.append(install(url, instance.headers, f"{prefix}s{run}"))
                shutil.rmtree(folder, ignore_errors=True)
            hand, ours = percentile(hand_times, 50), percentile(slipway_times, 50)
            table.add(
                "install p50: slipway | compose by hand",
                f"{ms(ours)} | {ms(hand)}",
                f"<= 1.2 x hand + 0.5 s = {ms(hand * 1.2 + 0.5)}",
                ours <= hand * 1.2 + 0.5,
            )
            # The rest are the built-in nginx template on a stand-in image without a health check:
            # fifty containers probing themselves every second would load the machine, not slipway.
            engine.images.build(
                fileobj=io.BytesIO(STAND_IN.encode()),
                tag="nginx:1.28",
                rm=True,
                network_mode="none",
            )
            for index in range(APPS - RUNS):
                install(url, instance.headers, f"{prefix}a{index}", app="nginx")
            latencies = []
            for _ in range(100):
                begin = time.perf_counter()
                answer = httpx.get(f"{url}/api/v1/apps", headers=instance.headers, timeout=30)
                latencies.append(time.perf_counter() - begin)
                assert len(answer.json()["items"]) == APPS
            p95 = percentile(latencies, 95)
            table.add(
                f"GET /apps with {APPS} apps: p50 | p95",
                f"{ms(percentile(latencies, 50))} | {ms(p95)}",
                "p95 <= 100 ms",
                p95 <= 0.1,
            )
            freshness = []
            for run in range(3):
                name = f"{prefix}s{run}"
                engine.containers.get(name).kill()
                killed = time.perf_counter()
                wait_for(
                    lambda name=name: (
                        httpx.get(f"{url}/api/v1/apps/{name}", headers=instance.headers).json()[
                            "status"
                        ]
                        in ("exited", "failed", "restarting")
                    ),
                    timeout=10,
                    what="the new status",
                )
                freshness.append(time.perf_counter() - killed)
            worst = max(freshness)
            table.add(
                "killed container shows in the API (worst of 3)", ms(worst), "<= 2 s", worst <= 2.0
            )
    finally:
        clean(engine, prefix)
    finish([table], started)


if __name__ == "__main__":
    sys.exit(main())
