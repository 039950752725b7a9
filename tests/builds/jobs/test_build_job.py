"""The build job against the real engine and registry: build, push, verify, fail, cancel, queue."""

from __future__ import annotations

import re
import uuid

import docker
import pytest

from tests.builds.jobs.support import (
    BUSYBOX,
    add_registry,
    assert_succeeded,
    build_row,
    log_text,
    operation_row,
    queue_build,
    wait_until_final,
)
from tests.conftest import wait_for

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def test_a_build_is_pushed_and_its_digest_confirmed_by_the_registry(
    settings, client, tokens, registry, repo, worker
):
    add_registry(client, tokens["admin"], registry)
    target = f"{registry.address}/{repo}:1"
    marker = uuid.uuid4().hex
    build_id, operation_id = queue_build(
        settings,
        dockerfile=f"FROM {BUSYBOX}\nRUN echo {marker} > /marker\n",
        target=target,
    )

    operation = wait_until_final(settings, operation_id)

    assert operation.status == "succeeded", operation.error
    build = build_row(settings, build_id)
    assert build.status == "succeeded"
    assert build.digest == registry.manifest_digest(repo, "1")
    assert build.size and build.size > 0
    assert set(build.timings) >= {"build", "push", "verify", "total"}
    text = log_text(settings, operation_id)
    assert "Step 2/3 : RUN echo" in text
    assert f"verified {target}@{build.digest}" in text
    assert registry.password not in text


def test_a_failing_build_step_fails_the_build_and_pushes_nothing(
    settings, client, tokens, registry, repo, worker
):
    add_registry(client, tokens["admin"], registry)
    build_id, operation_id = queue_build(
        settings,
        dockerfile=f"FROM {BUSYBOX}\nRUN echo about to fail && exit 3\n",
        target=f"{registry.address}/{repo}:1",
    )

    operation = wait_until_final(settings, operation_id)

    assert operation.status == "failed"
    assert operation.error["code"] == "build_failed"
    assert "returned a non-zero code: 3" in operation.error["message"]
    assert build_row(settings, build_id).status == "failed"
    assert registry.tags(repo) == []


def test_a_base_image_that_does_not_exist_fails_with_the_engines_reason(
    settings, client, tokens, registry, repo, worker
):
    add_registry(client, tokens["admin"], registry)
    _, operation_id = queue_build(
        settings,
        dockerfile=f"FROM {registry.address}/nothing/here:1\n",
        target=f"{registry.address}/{repo}:1",
    )

    operation = wait_until_final(settings, operation_id)

    assert operation.status == "failed"
    assert operation.error["code"] == "build_failed"
    assert "nothing/here" in operation.error["message"]


def test_a_push_the_registry_refuses_is_a_failure_not_a_success(
    settings, client, tokens, registry, repo, worker
):
    add_registry(client, tokens["admin"], registry)
    # The registry stops accepting the saved password after it was checked.
    registry.add_user(registry.username, "changed-" + uuid.uuid4().hex[:8])
    try:
        build_id, operation_id = queue_build(
            settings, dockerfile=f"FROM {BUSYBOX}\n", target=f"{registry.address}/{repo}:1"
        )
        operation = wait_until_final(settings, operation_id)
    finally:
        registry.add_user(registry.username, registry.password)

    assert operation.status == "failed"
    assert operation.error["code"] in ("registry_login_failed", "push_failed")
    assert build_row(settings, build_id).digest is None
    assert registry.tags(repo) == []


def test_a_registry_down_during_the_push_fails_the_build(
    settings, client, tokens, registry, repo, worker
):
    add_registry(client, tokens["admin"], registry)
    build_id, operation_id = queue_build(
        settings,
        dockerfile=f"FROM {BUSYBOX}\nRUN sleep 3\n",
        target=f"{registry.address}/{repo}:1",
    )
    wait_for(lambda: "Step 2/3" in log_text(settings, operation_id), what="the build to run")
    registry.stop()
    try:
        operation = wait_until_final(settings, operation_id)
    finally:
        registry.start()

    assert operation.status == "failed"
    assert operation.error["code"] in ("push_failed", "push_unverified")
    assert build_row(settings, build_id).status == "failed"


def test_cancel_stops_a_running_build_and_leaves_no_container(
    settings,
    client,
    tokens,
    registry,
    repo,
    worker,
    engine,
):
    add_registry(client, tokens["admin"], registry)
    marker = uuid.uuid4().hex
    build_id, operation_id = queue_build(
        settings,
        dockerfile=f"FROM {BUSYBOX}\nRUN sleep 120 && echo {marker}\n",
        target=f"{registry.address}/{repo}:1",
    )
    wait_for(
        lambda: any(
            marker in " ".join(c.attrs["Config"]["Cmd"] or [])
            for c in engine.containers.list(filters={"ancestor": BUSYBOX})
        ),
        timeout=60,
        what="the build's RUN container",
    )

    answer = client.post(
        f"/api/v1/builds/{build_id}/cancel",
        headers={"Authorization": f"Bearer {tokens['operator']}"},
    )
    assert answer.status_code == 200, answer.text
    operation = wait_until_final(settings, operation_id, timeout=30)

    assert operation.status == "canceled", operation.error
    assert build_row(settings, build_id).status == "canceled"

    def leftovers() -> list:
        return [
            c
            for c in engine.containers.list(all=True, filters={"ancestor": BUSYBOX})
            if marker in " ".join(c.attrs["Config"]["Cmd"] or [])
        ]

    wait_for(lambda: not leftovers(), timeout=30, what="the RUN container to be removed")
    assert registry.tags(repo) == []


def test_builds_beyond_the_endpoints_concurrency_wait_their_turn(
    settings, client, tokens, registry, repo, worker, monkeypatch
):
    add_registry(client, tokens["admin"], registry)
    monkeypatch.setattr(settings, "build_concurrency", 1)
    first_id, first_op = queue_build(
        settings, dockerfile=f"FROM {BUSYBOX}\nRUN sleep 2\n", target=f"{registry.address}/{repo}:1"
    )
    second_id, second_op = queue_build(
        settings, dockerfile=f"FROM {BUSYBOX}\nRUN sleep 1\n", target=f"{registry.address}/{repo}:2"
    )

    assert operation_row(settings, second_op).status == "waiting"
    assert_succeeded(settings, first_op)
    assert_succeeded(settings, second_op)
    first, second = operation_row(settings, first_op), operation_row(settings, second_op)
    assert second.started_at >= first.finished_at
    assert sorted(registry.tags(repo)) == ["1", "2"]


def test_the_image_a_moved_tag_leaves_dangling_is_removed(
    settings, client, tokens, registry, repo, worker, engine
):
    add_registry(client, tokens["admin"], registry)
    target = f"{registry.address}/{repo}:1"
    image_ids = []
    for content in ("first", "second"):
        build_id, operation_id = queue_build(
            settings, dockerfile=f"FROM {BUSYBOX}\nRUN echo {content}-{repo} > /f\n", target=target
        )
        assert_succeeded(settings, operation_id)
        image_ids.append(build_row(settings, build_id).image_id)

    assert image_ids[0] != image_ids[1]
    assert engine.images.get(target).id == image_ids[1]
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(image_ids[0])
    assert re.search(r"removed \d+ dangling image layer", log_text(settings, operation_id))


def test_a_base_image_from_the_private_registry_is_pulled_with_its_login(
    settings, client, tokens, registry, repo, worker, engine
):
    add_registry(client, tokens["admin"], registry)
    registry.push(f"{repo}-base", "1")
    base = f"{registry.address}/{repo}-base:1"
    # push() untags its local copy: only the registry has the base image now.

    build_id, operation_id = queue_build(
        settings,
        dockerfile=f"FROM {base}\nRUN echo built-on-pulled-base\n",
        target=f"{registry.address}/{repo}:1",
    )

    operation = wait_until_final(settings, operation_id)
    assert operation.status == "succeeded", operation.error
    assert build_row(settings, build_id).digest == registry.manifest_digest(repo, "1")
    engine.images.remove(base, force=True)
