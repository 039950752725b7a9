"""Issue 6's figures: a slipway build beside `docker build` of the same Dockerfile by hand, an
unchanged spec rebuilt, and how soon after the push the push is verified and the callback lands.

The spec is a real one: the Debian base image the build tests make (`local/debian:bookworm-
slipway`, debootstrap the first time), an apt package from a local apt repository through a mirror
profile, and a pip package from a local index into a venv — served on 127.0.0.1, so builds use the
host network (SLIPWAY_BUILD_NETWORK=host; by hand `--network host`). Both contenders use the classic
builder (`DOCKER_BUILDKIT=0` by hand; slipway talks to the engine's build API the same way).

1. Cold build, median of 4, taking turns (each goes first every other run): slipway (API POST ->
   the `build` phase ends, as its log and `timings.build` show) beside `docker build` of the
   Dockerfile and context slipway rendered, its output read as a user's terminal would (no `-q`:
   a quiet build skips streaming RUN output, which slipway always streams into the log). Every
   image (and so every cached layer) is removed between runs.
2. The same spec submitted again: the whole operation (build, push, verify) beside the first's.
3. From the push's last stream line to: the push verified, and the callback received by a real
   HTTP server here (through the outbound policy, with the configured headers).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import httpx
from _common import BENCH_DIR, Instance, Table, finish, free_port, ms, wait_for

sys.path.insert(0, str(BENCH_DIR.parent))  # tests.*

from slipway.builds import dockerfile as rendering  # noqa: E402
from slipway.builds.mirrors import ResolvedMirror  # noqa: E402
from slipway.builds.spec import parse_build_request  # noqa: E402
from tests.builds import support  # noqa: E402
from tests.builds.jobs.support import Receiver  # noqa: E402
from tests.support.registry import RegistryServer  # noqa: E402

RUNS = 4
REPOSITORY = "bench/tools"


def local_sources(tmp: Path) -> tuple[support.Served, support.Served]:
    apt_root, wheels, index_root = tmp / "apt", tmp / "wheels", tmp / "pip"
    for path in (apt_root, wheels, index_root):
        path.mkdir()
    support.build_deb(
        apt_root, name=support.APT_PACKAGE, version="1.0", command=support.APT_COMMAND,
        output=support.APT_OUTPUT,
    )  # fmt: skip
    support.write_apt_repository(apt_root)
    wheel = support.build_wheel(
        wheels, name=support.PIP_PACKAGE, version="1.0", module=support.PIP_MODULE,
        source=f'GREETING = "{support.PIP_OUTPUT}"\n',
    )  # fmt: skip
    support.write_simple_index(index_root, [wheel])
    return support.serve(apt_root), support.serve(index_root)


def spec_for(registry: RegistryServer, apt_url: str, pip_url: str, callback: str) -> dict:
    return {
        "task_name": "bench-tools",
        "base_image": support.DEBIAN_IMAGE,
        "target_image": f"{registry.address}/{REPOSITORY}:1",
        "callback_url": callback,
        "apt": {"mirror": {"type": "bench", "file_name": "debian-12.list"},
                "packages": [support.APT_PACKAGE]},
        "pip": {"index_url": f"{pip_url}/simple/", "packages": [f"{support.PIP_PACKAGE}==1.0"]},
    }  # fmt: skip


def wait_operation(url: str, headers: dict[str, str], operation_id: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        op = httpx.get(f"{url}/api/v1/operations/{operation_id}", headers=headers).json()
        return op if op["status"] in ("succeeded", "failed", "canceled") else None

    operation = wait_for(final, timeout=900, what="the build")
    if operation["status"] != "succeeded":
        raise RuntimeError(f"the build ended {operation['status']}: {operation['error']}")
    return operation


def log_lines(url: str, headers: dict[str, str], operation_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{url}/api/v1/operations/{operation_id}/logs",
        headers={**headers, "Accept": "application/x-ndjson"},
    )
    import json

    return [json.loads(line) for line in answer.text.splitlines() if line.strip()]


def at(line: dict[str, Any]) -> float:
    return datetime.fromisoformat(line["time"]).timestamp()


def slipway_build(url: str, headers: dict[str, str], spec: dict) -> dict[str, Any]:
    """Submit; returns seconds to the end of the build phase and of the whole, and the ids."""
    started = time.time()
    answer = httpx.post(f"{url}/api/v1/builds", json=spec, headers=headers, timeout=60)
    answer.raise_for_status()
    operation_id = answer.json()["operation"]["id"]
    build_id = answer.json()["build"]["id"]
    wait_operation(url, headers, operation_id)
    total = time.time() - started
    lines = log_lines(url, headers, operation_id)
    push_start = next(line for line in lines if line["text"].startswith("==> push"))
    build_start = next(line for line in lines if line["text"].startswith("==> build"))
    build = httpx.get(f"{url}/api/v1/builds/{build_id}", headers=headers).json()
    return {
        "build": at(push_start) - started,
        "dispatch": at(build_start) - started,
        "total": total,
        "operation_id": operation_id,
        "build_id": build_id,
        "lines": lines,
        "view": build,
    }


def by_hand(context: rendering.BuildContext, tag: str) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-build-") as directory:
        (Path(directory) / "Dockerfile").write_text(context.dockerfile)
        for name, data in context.files.items():
            path = Path(directory) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        started = time.time()
        subprocess.run(
            ["docker", "build", "--network", "host", "-t", tag, directory],
            check=True, capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )  # fmt: skip
        return time.time() - started


def forget(engine: docker.DockerClient, *tags: str) -> None:
    """Remove the images and so their cached layers (the parents nothing else uses)."""
    for tag in tags:
        try:
            engine.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
    engine.images.prune(filters={"dangling": True})


def main() -> None:
    started = time.monotonic()
    problem = support.debian_image_problem()
    if problem:
        sys.exit(f"cannot bench builds: {problem}")
    support.ensure_debian_image()
    engine = docker.from_env()
    table = Table("builds on the local engine (postgresql, 1 worker, classic builder)")
    tmp = Path(tempfile.mkdtemp(prefix="slipway-bench-builds-"))
    apt, pip = local_sources(tmp)
    registry = RegistryServer(tmp / "registry", port=free_port())
    registry.start()
    receiver = Receiver()
    try:
        with Instance("postgresql") as instance:
            instance.env.update(SLIPWAY_OUTBOUND_ALLOW="127.0.0.1/32", SLIPWAY_BUILD_NETWORK="host")
            url, _ = instance.api()
            instance.worker("w1")
            headers = instance.headers
            httpx.post(
                f"{url}/api/v1/registries", headers=headers,
                json={"name": "bench", "url": registry.address, "username": registry.username,
                      "password": registry.password},
            ).raise_for_status()  # fmt: skip
            httpx.post(
                f"{url}/api/v1/mirror-profiles", headers=headers,
                json={"type": "bench", "file_name": "debian-12.list",
                      "content": support.apt_profile(apt.url)},
            ).raise_for_status()  # fmt: skip
            httpx.put(
                f"{url}/api/v1/settings/callback-headers", headers=headers,
                json={"X-BizType": "DROS", "Content-Type": "application/json"},
            ).raise_for_status()  # fmt: skip
            spec = spec_for(registry, apt.url, pip.url, receiver.url)
            parsed = parse_build_request(spec, fastbuild_key=None, fastbuild_iv=None)
            mirror = ResolvedMirror(
                type="bench", file_name="debian-12.list", manager="apt",
                content=support.apt_profile(apt.url),
            )  # fmt: skip
            context = rendering.render(parsed, mirror=mirror)
            target = spec["target_image"]

            ours, hand, dispatch, in_job = [], [], [], []

            def ours_once() -> None:
                forget(engine, target, "bench/by-hand:1")
                result = slipway_build(url, headers, spec)
                rendered = httpx.get(
                    f"{url}/api/v1/builds/{result['build_id']}/dockerfile", headers=headers
                ).text
                assert rendered == context.dockerfile, "the bench renders another Dockerfile"
                ours.append(result["build"])
                dispatch.append(result["dispatch"])
                in_job.append(result["view"]["timings"]["build"])

            def hand_once() -> None:
                forget(engine, target, "bench/by-hand:1")
                hand.append(by_hand(context, "bench/by-hand:1"))

            # Taking turns, each going first every other run (a warm page cache favours neither).
            for run in range(RUNS):
                for contender in (ours_once, hand_once) if run % 2 == 0 else (hand_once, ours_once):
                    contender()
            forget(engine, "bench/by-hand:1")
            slipway_med, hand_med = statistics.median(ours), statistics.median(hand)
            limit = hand_med * 1.1 + 0.5
            table.add(
                "cold build p50: slipway | docker build by hand",
                f"{ms(slipway_med)} | {ms(hand_med)}",
                f"<= 1.1 x hand + 0.5 s = {ms(limit)}",
                slipway_med <= limit,
            )
            table.add(
                "  runs: slipway | by hand",
                " ".join(f"{t:.1f}" for t in ours) + " | " + " ".join(f"{t:.1f}" for t in hand),
            )
            table.add("  slipway: POST -> job running (p50)", ms(statistics.median(dispatch)))
            table.add(
                "  slipway: the engine's build, as the job timed it (p50)",
                ms(statistics.median(in_job)),
            )

            forget(engine, target)
            receiver.requests.clear()
            cold_run = slipway_build(url, headers, spec)
            warm_run = slipway_build(url, headers, spec)
            ratio = warm_run["total"] / cold_run["total"]
            table.add(
                "unchanged spec rebuilt: whole operation | first",
                f"{ms(warm_run['total'])} | {ms(cold_run['total'])} ({ratio:.0%})",
                "<= 20 %",
                ratio <= 0.2,
            )
            table.add(
                "  build phase only: rebuilt | first",
                f"{ms(warm_run['build'])} | {ms(cold_run['build'])}",
            )

            wait_for(lambda: len(receiver.requests) >= 2, timeout=30, what="the callbacks")
            lines = cold_run["lines"]
            verify_at = next(
                i for i, line in enumerate(lines) if line["text"].startswith("==> verify")
            )
            push_end = at(lines[verify_at - 1])
            verified = at(next(line for line in lines if line["text"].startswith("verified ")))
            delivered = receiver.requests[0]["at"]
            table.add(
                "push end -> verified | -> callback received",
                f"{ms(verified - push_end)} | {ms(delivered - push_end)}",
                "callback <= 1 s",
                delivered - push_end <= 1.0,
            )
    finally:
        forget(engine, f"{registry.address}/{REPOSITORY}:1", "bench/by-hand:1")
        receiver.close()
        registry.stop()
        apt.close()
        pip.close()
    finish([table], started)


if __name__ == "__main__":
    main()
