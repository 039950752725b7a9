"""FastBuild's AES secrets, decrypted with its own [aes] key; the hashes that reach images."""

from __future__ import annotations

import copy
import subprocess

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr

from slipway.builds.fastbuild_secrets import (
    SSH_ROUNDS,
    decrypt_secret,
    encrypt_secret,
    hash_secrets,
    jupyter_password_hash,
    sha512_crypt,
    ssh_password_hash,
)
from slipway.builds.spec import parse_build_request
from slipway.core.config import Settings
from slipway.core.errors import InputError
from tests.builds.support import FASTBUILD_IV, FASTBUILD_KEY, SEED_REQUEST

SEED_SECRET = "qkrhxQmWOe5kvpJpplvTuQ=="
NESTED = "dockerfile_json.image_installer_config"


def decrypt(value: object, *, key: bytes | None = FASTBUILD_KEY, iv: bytes | None = FASTBUILD_IV):
    return decrypt_secret(value, field="webSSHSecret", key=key, iv=iv)


def refusal(value: object, **keys: bytes | None) -> InputError:
    with pytest.raises(InputError) as caught:
        decrypt(value, **keys)
    error = caught.value
    assert error.details["field"] == "webSSHSecret"
    assert isinstance(value, str) and (not value or value not in error.message)  # never echoed
    return error


def test_the_seed_sample_is_the_empty_string_under_the_seed_key_so_the_feature_is_off() -> None:
    assert decrypt(SEED_SECRET) is None
    assert encrypt_secret("", key=FASTBUILD_KEY, iv=FASTBUILD_IV) == SEED_SECRET


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_field_is_off_even_without_a_key(value: str | None) -> None:
    assert decrypt(value, key=None, iv=None) is None


@pytest.mark.parametrize("plaintext", ["s3cret", "密码-with-ünïcode", "x" * 100])
def test_a_secret_decrypts_to_its_plaintext(plaintext: str) -> None:
    value = encrypt_secret(plaintext, key=FASTBUILD_KEY, iv=FASTBUILD_IV)

    secret = decrypt(value)

    assert isinstance(secret, SecretStr) and secret.get_secret_value() == plaintext


def test_a_set_field_without_a_configured_key_names_the_settings() -> None:
    error = refusal(SEED_SECRET, key=None, iv=None)

    assert error.code == "fastbuild_key_missing"
    assert "SLIPWAY_FASTBUILD_AES_KEY" in error.message
    assert "SLIPWAY_FASTBUILD_AES_IV" in error.message


def test_a_key_of_the_wrong_size_is_refused() -> None:
    assert refusal(SEED_SECRET, key=b"short").code == "fastbuild_key_invalid"


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        "qkrhxQmWOe5kvpJpplvTuQ",  # padding cut off
        "YWJj",  # 3 bytes: not whole AES blocks
        encrypt_secret("pw", key=b"another-16-bytes", iv=FASTBUILD_IV),  # wrong key: bad padding
        encrypt_secret("line\nbreak", key=FASTBUILD_KEY, iv=FASTBUILD_IV),
    ],
)
def test_values_that_do_not_decrypt_to_a_password_are_refused_without_echo(value: str) -> None:
    error = refusal(value)

    assert "Traceback" not in error.message


def test_a_non_string_field_is_refused() -> None:
    with pytest.raises(InputError):
        decrypt(12345)


def _request(**secrets: str) -> dict:
    body = copy.deepcopy(SEED_REQUEST)
    for path, value in secrets.items():
        holder = body
        *parents, last = path.split("/")
        for key in parents:
            holder = holder[key]
        holder[last] = value
    return body


def _parse(body: dict, key: bytes | None = FASTBUILD_KEY, iv: bytes | None = FASTBUILD_IV):
    return parse_build_request(body, fastbuild_key=key, fastbuild_iv=iv)


def test_a_request_with_secrets_carries_them_as_secret_strings() -> None:
    ssh = encrypt_secret("root-pw", key=FASTBUILD_KEY, iv=FASTBUILD_IV)
    lab = encrypt_secret("lab-pw", key=FASTBUILD_KEY, iv=FASTBUILD_IV)

    spec = _parse(_request(webSSHSecret=ssh, jupyterLabSecret=lab))

    assert spec.secrets.web_ssh is not None and spec.secrets.jupyter_lab is not None
    assert spec.secrets.web_ssh.get_secret_value() == "root-pw"
    assert spec.secrets.jupyter_lab.get_secret_value() == "lab-pw"
    assert "root-pw" not in repr(spec) + spec.model_dump_json()


def test_the_copies_inside_dockerfile_json_count_when_the_top_level_field_is_empty() -> None:
    ssh = encrypt_secret("nested-pw", key=FASTBUILD_KEY, iv=FASTBUILD_IV)
    body = _request(
        **{"webSSHSecret": "", "dockerfile_json/image_installer_config/webSSHSecret": ssh}
    )

    spec = _parse(body)

    assert spec.secrets.web_ssh is not None
    assert spec.secrets.web_ssh.get_secret_value() == "nested-pw"


def test_the_seed_request_needs_the_key_its_secrets_are_encrypted_with() -> None:
    with pytest.raises(InputError) as caught:
        _parse(_request(), key=None, iv=None)

    assert caught.value.details["field"] == "webSSHSecret"


def test_a_bad_nested_secret_is_named_where_it_was() -> None:
    body = _request(
        **{"jupyterLabSecret": "", f"{NESTED.replace('.', '/')}/jupyterLabSecret": "!!"}
    )

    with pytest.raises(InputError) as caught:
        _parse(body)

    assert caught.value.details["field"] == f"{NESTED}.jupyterLabSecret"


def test_settings_read_the_key_and_iv_from_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SLIPWAY_FASTBUILD_AES_KEY", FASTBUILD_KEY.decode())
    monkeypatch.setenv("SLIPWAY_FASTBUILD_AES_IV", FASTBUILD_IV.decode())

    settings = Settings(data_dir=tmp_path)

    assert settings.fastbuild_aes_key is not None and settings.fastbuild_aes_iv is not None
    assert settings.fastbuild_aes_key.get_secret_value() == FASTBUILD_KEY.decode()
    assert "c7e71f37" not in repr(settings)
    assert _parse(
        _request(), settings.fastbuild_aes_key, settings.fastbuild_aes_iv
    ).secrets.is_empty
    assert (
        Settings(_env_file=None, data_dir=tmp_path, fastbuild_aes_key=None).fastbuild_aes_key
        is None
    )


# --- hashes ---------------------------------------------------------------------------------------


def openssl_passwd(password: str, salt: str) -> str:
    return subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, password],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.parametrize(
    ("password", "salt"),
    [
        ("hello", "abcdefgh"),
        ("a", "saltsalt"),
        ("x" * 150, "saltsaltsaltsaltextra"),  # salt cut at 16, password over 64 bytes
        ("pässwörd €", "./AZaz09"),
        ("p" * 64, "s"),
    ],
)
def test_sha512_crypt_agrees_with_openssl(password: str, salt: str) -> None:
    assert sha512_crypt(password, salt) == openssl_passwd(password, salt)


def test_sha512_crypt_of_the_empty_password_agrees_with_glibc() -> None:
    # openssl will not hash an empty password; this is glibc's crypt("", "$6$saltsalt").
    expected = (
        "$6$saltsalt$qkTgsCrWMTAS9gBGcf9W60sFfH.hU0oTCAOJjhbz5tSp/sU3/xXZK4OFwCtq8lIIdpJ6CatVdOTSHKp"
        "97TPkt/"
    )

    assert sha512_crypt("", "saltsalt") == expected


def test_sha512_crypt_with_rounds_agrees_with_openssl() -> None:
    expected = openssl_passwd("hello", "rounds=10000$abcdefgh")

    assert sha512_crypt("hello", "abcdefgh", rounds=10000) == expected


def test_the_ssh_hash_is_deterministic_per_password_and_per_salt_key() -> None:
    first = ssh_password_hash("root-pw", salt_key=b"key-1")

    assert first == ssh_password_hash("root-pw", salt_key=b"key-1")
    assert first != ssh_password_hash("root-pw", salt_key=b"key-2")
    assert first != ssh_password_hash("root-pw2", salt_key=b"key-1")
    _, _, rounds, salt, _ = first.split("$")
    assert rounds == f"rounds={SSH_ROUNDS}" and len(salt) == 16
    assert sha512_crypt("root-pw", salt, rounds=SSH_ROUNDS) == first


def test_the_jupyter_hash_is_jupyter_servers_argon2_form_and_verifies() -> None:
    hashed = jupyter_password_hash("lab-pw", salt_key=b"key-1")

    assert hashed.startswith("argon2:$argon2id$v=19$m=10240,t=10,p=8$")
    assert hashed == jupyter_password_hash("lab-pw", salt_key=b"key-1")
    assert hashed != jupyter_password_hash("lab-pw", salt_key=b"key-2")
    assert PasswordHasher().verify(hashed.removeprefix("argon2:"), "lab-pw")


def test_hash_secrets_hashes_only_what_is_set() -> None:
    hashes = hash_secrets(web_ssh=SecretStr("pw"), jupyter_lab=None, salt_key=b"k")

    assert hashes.root_password_hash is not None and hashes.jupyter_password_hash is None
    assert hash_secrets(web_ssh=None, jupyter_lab=None, salt_key=b"k").is_empty
    with pytest.raises(ValueError):
        hash_secrets(web_ssh=SecretStr("pw"), jupyter_lab=None, salt_key=b"")
