"""The secrets vault: authenticated encryption, the master key, its fingerprint and rotation."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from slipway.core import secrets as vault_module
from slipway.core.config import Settings
from slipway.core.db import make_engine
from slipway.core.errors import InputError
from slipway.core.models import Meta, Secret
from slipway.core.secrets import (
    SecretKeyMismatchError,
    Vault,
    decode_key,
    encode_key,
    fingerprint,
    generate_key,
    load_key,
    open_vault,
    stored_fingerprint,
)
from tests.cli.helpers import finish, ok, one_error_line, run, start
from tests.conftest import ROOT, free_port


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def key_in(path: Path) -> bytes:
    return decode_key(path.read_text(), source=str(path))


# --- encryption -----------------------------------------------------------------------------------


def test_a_value_comes_back_and_never_encrypts_the_same_way_twice() -> None:
    vault = Vault(generate_key())

    first = vault.encrypt("s3cret-pässword", context="secret-1")
    second = vault.encrypt("s3cret-pässword", context="secret-1")

    assert first != second  # a random nonce each time
    assert "s3cret" not in first
    assert vault.decrypt(first, context="secret-1") == "s3cret-pässword"
    assert vault.decrypt(second, context="secret-1") == "s3cret-pässword"


def test_tampering_another_context_or_another_key_is_refused() -> None:
    key = generate_key()
    vault = Vault(key)
    sealed = vault.encrypt("value", context="secret-1")
    flipped = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]

    with pytest.raises(SecretKeyMismatchError) as tampered:
        vault.decrypt(flipped, context="secret-1")
    with pytest.raises(SecretKeyMismatchError):
        vault.decrypt(sealed, context="secret-2")  # moved to another row
    with pytest.raises(SecretKeyMismatchError):
        Vault(generate_key()).decrypt(sealed, context="secret-1")
    for damaged in ("plain text", "v1:", "v1:QUJD", "v1:!!not base64!!", sealed[:20]):
        with pytest.raises(SecretKeyMismatchError):
            vault.decrypt(damaged, context="secret-1")

    assert tampered.value.code == "secret_key_mismatch"
    assert Vault(key).decrypt(sealed, context="secret-1") == "value"


# --- the master key -------------------------------------------------------------------------------


def test_the_key_file_is_made_on_first_start_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=None)

    key = load_key(settings)

    assert settings.key_file == tmp_path / "data" / "secret.key"
    assert mode_of(settings.key_file) == 0o600
    assert key_in(settings.key_file) == key
    assert load_key(settings) == key  # read, not made again
    assert sorted(p.name for p in settings.key_file.parent.iterdir()) == ["secret.key"]


def test_slipway_secret_key_wins_over_the_key_file(tmp_path: Path) -> None:
    file_key, env_key = generate_key(), generate_key()
    path = tmp_path / "secret.key"
    path.write_text(encode_key(file_key))

    settings = Settings(data_dir=tmp_path, secret_key_file=path, secret_key=encode_key(env_key))

    assert load_key(settings) == env_key


def test_slipway_secret_key_that_is_not_a_key_is_refused_clearly(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="not-a-key-at-all")

    with pytest.raises(InputError) as refused:
        load_key(settings)

    assert refused.value.code == "invalid_secret_key"
    assert "SLIPWAY_SECRET_KEY" in refused.value.message
    assert "slipway secrets generate-key" in refused.value.message
    assert "not-a-key-at-all" not in refused.value.message
    assert not (tmp_path / "secret.key").exists()


def test_generate_key_prints_a_valid_key(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}

    first = ok(run("secrets", "generate-key", env=env, cwd=tmp_path)).strip()
    second = ok(run("secrets", "generate-key", env=env, cwd=tmp_path)).strip()

    assert len(decode_key(first, source="output")) == 32
    assert first != second
    assert not (tmp_path / "data").exists()


# --- the key and the database ---------------------------------------------------------------------


def test_first_open_records_the_fingerprint_and_secrets_live_in_the_database(
    settings: Settings, session: Session
) -> None:
    assert stored_fingerprint(session) is None

    vault = open_vault(session, settings)
    secret_id = vault.store(session, owner="registry:harbor", value="hunter22")
    session.commit()

    assert stored_fingerprint(session) == vault.fingerprint
    assert vault.fingerprint == fingerprint(key_in(settings.key_file))
    row = session.get(Secret, secret_id)
    assert row is not None and "hunter22" not in row.ciphertext
    again = open_vault(session, settings)
    assert again.reveal(session, secret_id) == "hunter22"
    again.store(session, owner="registry:harbor", value="changed", secret_id=secret_id)
    assert again.reveal(session, secret_id) == "changed"
    again.forget(session, secret_id)
    session.commit()
    assert session.get(Secret, secret_id) is None


def _open_vault_when_released(barrier: Any, results: Any, database_url: str, data_dir: str) -> None:
    """One slipway process starting: its own engine, its own view of the key file."""
    settings = Settings(data_dir=Path(data_dir), database_url=database_url)
    engine = make_engine(database_url)
    barrier.wait()
    try:
        with Session(engine) as session:
            vault = open_vault(session, settings)
            session.commit()
        results.put(vault.fingerprint)
    except Exception as error:
        results.put(f"{type(error).__name__}: {error}")
    finally:
        engine.dispose()


def test_processes_started_together_on_a_fresh_install_agree_on_one_key(
    env: dict[str, str],
) -> None:
    """An api and workers started at once (compose up) must not each make their own key."""
    fork = multiprocessing.get_context("fork")
    barrier, results = fork.Barrier(4), fork.Queue()
    args = (barrier, results, env["SLIPWAY_DATABASE_URL"], env["SLIPWAY_DATA_DIR"])
    children = [fork.Process(target=_open_vault_when_released, args=args) for _ in range(4)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=10)

    key_file = Path(env["SLIPWAY_DATA_DIR"]) / "secret.key"
    engine = make_engine(env["SLIPWAY_DATABASE_URL"])
    with Session(engine) as session:
        recorded = stored_fingerprint(session)
    engine.dispose()
    assert outcomes == [recorded] * 4, outcomes
    assert fingerprint(key_in(key_file)) == recorded
    assert [p.name for p in key_file.parent.iterdir() if "secret.key" in p.name] == ["secret.key"]


def test_a_process_holding_another_key_refuses_to_start(
    env: dict[str, str], settings: Settings, session: Session
) -> None:
    open_vault(session, settings)
    session.commit()
    other = {**env, "SLIPWAY_SECRET_KEY": encode_key(generate_key())}
    broken = {**env, "SLIPWAY_SECRET_KEY": "c2hvcnQ="}

    started = [
        start("worker", "--burst", env=other),
        start("api", "--port", str(free_port()), env=other),
        start("worker", "--burst", env=broken),
    ]
    worker, api, invalid = (finish(process) for process in started)

    for result in (worker, api):
        line = one_error_line(result, exit_code=1, contains="error: secret_key_mismatch")
        assert "same SLIPWAY_SECRET_KEY or key file" in line
    one_error_line(invalid, exit_code=2, contains="error: invalid_secret_key: SLIPWAY_SECRET_KEY")


# --- rotation -------------------------------------------------------------------------------------


def _store_some(session: Session, settings: Settings) -> tuple[Vault, dict[str, str]]:
    vault = open_vault(session, settings)
    values = {f"value-{n}": "" for n in range(3)}
    for value in values:
        values[value] = vault.store(session, owner="test", value=value)
    session.commit()
    return vault, values


def test_rotate_key_re_encrypts_every_secret_and_keeps_the_old_key(
    env: dict[str, str], settings: Settings, session: Session
) -> None:
    old_vault, values = _store_some(session, settings)
    before = dict(session.execute(select(Secret.id, Secret.ciphertext)).all())
    old_key = key_in(settings.key_file)

    refused = run("secrets", "rotate-key", env={**env, "SLIPWAY_SECRET_KEY": encode_key(old_key)})
    one_error_line(refused, exit_code=4, contains="error: secret_key_from_environment")
    assert key_in(settings.key_file) == old_key

    out = ok(run("secrets", "rotate-key", env=env))

    assert "re-encrypted 3 secret(s)" in out
    new_key = key_in(settings.key_file)
    assert new_key != old_key
    assert mode_of(settings.key_file) == 0o600
    backups = list(settings.key_file.parent.glob("secret.key.old-*"))
    assert len(backups) == 1 and key_in(backups[0]) == old_key and mode_of(backups[0]) == 0o600
    assert not settings.key_file.with_name("secret.key.new").exists()
    session.expire_all()
    assert stored_fingerprint(session) == fingerprint(new_key)
    after = dict(session.execute(select(Secret.id, Secret.ciphertext)).all())
    assert after.keys() == before.keys()
    assert all(after[secret_id] != before[secret_id] for secret_id in before)
    new_vault = open_vault(session, settings)
    assert {v: new_vault.reveal(session, i) for v, i in values.items()} == {v: v for v in values}
    with pytest.raises(SecretKeyMismatchError):
        old_vault.reveal(session, values["value-0"])
    # A process still holding the old key is now refused.
    with pytest.raises(SecretKeyMismatchError):
        vault_module.verify_key(session, old_vault)


def test_a_rotation_interrupted_after_its_commit_is_finished_on_next_start(
    settings: Settings, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, values = _store_some(session, settings)
    old_key = key_in(settings.key_file)

    def crash(_: Path) -> None:
        raise KeyboardInterrupt  # the machine stops between the commit and the key file swap

    monkeypatch.setattr(vault_module, "_backup_key_file", crash)
    with pytest.raises(KeyboardInterrupt):
        vault_module.rotate_key(session, settings)
    monkeypatch.undo()
    pending = settings.key_file.with_name("secret.key.new")
    assert pending.exists() and key_in(settings.key_file) == old_key
    new_key = key_in(pending)
    session.expire_all()
    assert stored_fingerprint(session) == fingerprint(new_key)

    vault = open_vault(session, settings)

    assert vault.fingerprint == fingerprint(new_key)
    assert key_in(settings.key_file) == new_key and mode_of(settings.key_file) == 0o600
    assert not pending.exists()
    backups = list(settings.key_file.parent.glob("secret.key.old-*"))
    assert [key_in(b) for b in backups] == [old_key]
    assert vault.reveal(session, values["value-1"]) == "value-1"


def test_a_rotation_that_crashed_before_its_commit_leaves_the_old_key_in_force(
    settings: Settings, session: Session
) -> None:
    _, values = _store_some(session, settings)
    old_key = key_in(settings.key_file)
    pending = settings.key_file.with_name("secret.key.new")
    pending.write_text(encode_key(generate_key()))

    vault = open_vault(session, settings)

    assert vault.fingerprint == fingerprint(old_key)
    assert key_in(settings.key_file) == old_key
    assert not pending.exists()
    assert vault.reveal(session, values["value-2"]) == "value-2"
    row = session.get(Meta, vault_module.FINGERPRINT_KEY)
    assert row is not None and row.value == fingerprint(old_key)
