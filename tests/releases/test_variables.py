"""WeCube diff variables: plain values, secrets encrypted for the app, and every refusal."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from slipway.core.errors import InputError
from slipway.releases.variables import (
    MissingVariablesError,
    Placeholder,
    encrypt_for_app,
    find_placeholders,
    generate_keypair,
    merge_variables,
    normalize_public_key,
    render_files,
    render_text,
    used_variables,
)


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return generate_keypair(2048)  # the 3072-bit default is checked once, below


def _decrypt(private_pem: str, value: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return key.decrypt(base64.b64decode(value), oaep).decode()


def test_finds_each_sigil_in_order() -> None:
    text = "a=[@Um_Vip] b=[&port] c=[!DB_password] d=[%token] e=[@um_vip] f=[#no] g=[@] h=[@1x]"
    assert find_placeholders(text) == [
        Placeholder("@", "Um_Vip", "um_vip", False),
        Placeholder("&", "port", "port", False),
        Placeholder("!", "DB_password", "db_password", True),
        Placeholder("%", "token", "token", True),
        Placeholder("@", "um_vip", "um_vip", False),
    ]
    assert find_placeholders("[%thread] [%5p] [%-5level]", literal=["THREAD"]) == []


def test_plain_sigils_take_the_value_case_insensitively() -> None:
    text = "um=[@UM_VIP]\nport=[&Port]\nagain=[@um_vip]\n"
    values = {"um_vip": "10.1.1.1", "PORT": "8080"}
    rendered = render_text(text, values=values, secrets={}, public_key_pem=None)
    assert rendered == "um=10.1.1.1\nport=8080\nagain=10.1.1.1\n"


def test_values_are_inserted_literally() -> None:
    values = {"a": "[@b] and \\1 and $x", "b": "never"}
    assert (
        render_text("[@a]", values=values, secrets={}, public_key_pem=None) == "[@b] and \\1 and $x"
    )


@pytest.mark.parametrize("sigil", ["!", "%"])
def test_secrets_are_encrypted_for_the_app(keypair: tuple[str, str], sigil: str) -> None:
    private_pem, public_pem = keypair
    secret = "s3cr3t-Passw0rd"
    rendered = render_text(
        f"password=[{sigil}Db_Password]\n",
        values={},
        secrets={"DB_PASSWORD": secret},
        public_key_pem=public_pem,
    )
    assert secret not in rendered and rendered.startswith("password=") and rendered.endswith("\n")
    assert _decrypt(private_pem, rendered[len("password=") : -1]) == secret


def test_secret_placeholder_may_use_a_plain_value(keypair: tuple[str, str]) -> None:
    private_pem, public_pem = keypair
    rendered = render_text("[!host]", values={"host": "db1"}, secrets={}, public_key_pem=public_pem)
    assert _decrypt(private_pem, rendered) == "db1"


def test_host_overrides_win_over_environment_values() -> None:
    environment = {"db_ip": "10.0.0.1", "Port": "3306"}
    host = {"DB_IP": "10.0.0.9"}
    merged = merge_variables(environment, host)
    assert merged == {"db_ip": "10.0.0.9", "port": "3306"}
    rendered = render_text("[@db_ip]:[@port]", values=merged, secrets={}, public_key_pem=None)
    assert rendered == "10.0.0.9:3306"


def test_names_differing_only_in_case_in_one_layer_are_refused() -> None:
    with pytest.raises(InputError) as caught:
        merge_variables({"db_ip": "a", "DB_IP": "b"})
    assert caught.value.code == "duplicate_variable"
    assert "'db_ip'" in caught.value.message and "'DB_IP'" in caught.value.message


def test_all_missing_variables_across_files_in_one_error(keypair: tuple[str, str]) -> None:
    files = {
        "conf/a.properties": b"a=[@alpha]\nb=[@known]\nc=[!gamma]\n",
        "conf/b.yml": b"x: [&Beta]\ny: [@alpha]\n",
        "lib/app.jar": b"\x00\xff[@never_rendered]",
    }
    with pytest.raises(MissingVariablesError) as caught:
        render_files(files, values={"known": "k"}, secrets={}, public_key_pem=keypair[1])
    error = caught.value
    assert error.code == "missing_variables" and error.status_code == 422
    assert error.details["missing"] == ["alpha", "beta", "gamma"]
    assert error.details["files"] == {
        "alpha": ["conf/a.properties", "conf/b.yml"],
        "beta": ["conf/b.yml"],
        "gamma": ["conf/a.properties"],
    }
    for name in ("alpha", "beta", "gamma"):
        assert name in error.message
    assert "environment" in error.message


def test_a_secret_is_never_written_in_clear_through_a_plain_sigil() -> None:
    with pytest.raises(MissingVariablesError) as caught:
        render_text(
            "pw=[@db_password]", values={}, secrets={"db_password": "x"}, public_key_pem=None
        )
    assert caught.value.details["stored_as_secret"] == ["db_password"]
    assert "[!name]" in caught.value.message


def test_missing_percent_name_hints_at_log_patterns() -> None:
    with pytest.raises(MissingVariablesError) as caught:
        render_text("%d [%thread] %msg", values={}, secrets={}, public_key_pem=None)
    assert "[%thread]" in caught.value.message and "literal" in caught.value.message
    text = "%d [%thread] %msg"
    assert render_text(text, values={}, secrets={}, public_key_pem=None, literal=["thread"]) == text


def test_binary_and_non_utf8_files_are_untouched(keypair: tuple[str, str]) -> None:
    files = {
        "conf/app.properties": "név=[@name]\n".encode(),
        "conf/logo.png": b"\x89PNG\r\n\x1a\n\x00[@name]",
        "conf/latin1.txt": "café [@name]".encode("latin-1"),
    }
    rendered = render_files(files, values={"name": "ü"}, secrets={}, public_key_pem=None)
    assert rendered["conf/app.properties"] == "név=ü\n".encode()
    assert rendered["conf/logo.png"] is files["conf/logo.png"]
    assert rendered["conf/latin1.txt"] is files["conf/latin1.txt"]


def test_line_endings_and_bom_survive() -> None:
    data = "\ufeffa=[@x]\r\nb=2\r\n".encode()
    rendered = render_files({"c.ini": data}, values={"x": "1"}, secrets={}, public_key_pem=None)
    assert rendered["c.ini"] == "\ufeffa=1\r\nb=2\r\n".encode()


def test_secret_without_a_public_key_is_its_own_error() -> None:
    files = {"conf/a.properties": b"pw=[!db_password]\n"}
    with pytest.raises(InputError) as caught:
        render_files(files, values={}, secrets={"db_password": "x"}, public_key_pem=None)
    error = caught.value
    assert error.code == "no_app_public_key"
    assert "db_password" in error.message and "conf/a.properties" in error.message
    assert "generate" in error.message and "public key" in error.message


def test_secret_too_long_for_one_rsa_block_is_refused(keypair: tuple[str, str]) -> None:
    with pytest.raises(InputError) as caught:
        render_text("[!cert]", values={}, secrets={"cert": "x" * 191}, public_key_pem=keypair[1])
    assert caught.value.code == "secret_too_long"
    assert caught.value.details["max_bytes"] == 190  # 256 - 2 * 32 - 2 for a 2048-bit key
    assert "x" * 20 not in caught.value.message
    assert render_text("[!cert]", values={}, secrets={"cert": "x" * 190}, public_key_pem=keypair[1])


def test_encrypt_for_app_round_trips(keypair: tuple[str, str]) -> None:
    private_pem, public_pem = keypair
    first, second = encrypt_for_app(public_pem, "value"), encrypt_for_app(public_pem, "value")
    assert first != second  # OAEP is randomized
    assert _decrypt(private_pem, first) == _decrypt(private_pem, second) == "value"


def test_generate_keypair_defaults_to_3072_bits() -> None:
    private_pem, public_pem = generate_keypair()
    assert private_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 3072
    with pytest.raises(InputError) as caught:
        generate_keypair(1024)
    assert caught.value.details == {"field": "bits"}


def test_normalize_accepts_pem_pkcs1_bare_base64_and_ssh(keypair: tuple[str, str]) -> None:
    public_pem = keypair[1]
    key = serialization.load_pem_public_key(public_pem.encode())
    pkcs1 = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ssh = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    for form in (public_pem, pkcs1.decode(), base64.b64encode(der).decode(), ssh.decode()):
        assert normalize_public_key(f"\n  {form}\n") == public_pem


def _other_keys() -> dict[str, str]:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    curve = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    private = small.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "small": small.public_key().public_bytes(pem, spki).decode(),
        "ec": curve.public_key().public_bytes(pem, spki).decode(),
        "private": private,
        "garbage": "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
        "empty": "",
    }


@pytest.mark.parametrize(
    ("which", "problem"),
    [
        ("small", "1024 bits"),
        ("ec", "not an RSA key"),
        ("private", "private key"),
        ("garbage", "could not be read"),
        ("empty", "could not be read"),
    ],
)
def test_bad_public_keys_are_refused(which: str, problem: str) -> None:
    text = _other_keys()[which]
    with pytest.raises(InputError) as caught:
        normalize_public_key(text)
    error = caught.value
    assert error.code == "bad_public_key" and error.details == {"field": "public_key"}
    assert problem in error.message
    assert "BEGIN PUBLIC KEY" in error.message  # says what to paste instead
    if which == "private":
        assert text.splitlines()[1] not in error.message
    with pytest.raises(InputError):
        render_text("[!x]", values={}, secrets={"x": "1"}, public_key_pem=text or "x")


def test_used_variables_lists_what_a_package_needs() -> None:
    files = {
        "conf/a.properties": b"[@DB_IP] [!db_password] [@db_ip]",
        "conf/b.xml": b"<x>[&Db_Ip]</x> [%thread]",
        "conf/c.bin": b"\x00[@hidden]",
    }
    assert used_variables(files, literal=["thread"]) == {
        "db_ip": ["conf/a.properties", "conf/b.xml"],
        "db_password": ["conf/a.properties"],
    }
