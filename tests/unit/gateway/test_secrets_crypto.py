"""Sealing project secrets: round trips, and every way a ciphertext must refuse to open."""

from __future__ import annotations

import base64

import pytest

from spool_gateway.secret_rules import missing_secrets, name_errors, value_errors
from spool_gateway.secrets_crypto import (
    KEY_ID_BYTES,
    NONCE_BYTES,
    Keyring,
    SecretsKeyError,
    UnsealError,
    key_id,
    keyring_from,
    seal,
    sealed_key_id,
    unseal,
)

OLD = bytes(range(32))
NEW = bytes(range(32, 64))
NONCE = b"\x01" * NONCE_BYTES


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def ring(current: bytes, *old: bytes) -> Keyring:
    keyring = keyring_from(b64(current), ",".join(b64(k) for k in old))
    assert keyring is not None
    return keyring


def test_a_value_round_trips_and_the_ciphertext_is_key_id_nonce_sealed() -> None:
    keyring = ring(OLD)
    sealed = seal(keyring, "p1", "API_TOKEN", "s3cr3t-ü", NONCE)
    assert sealed[:KEY_ID_BYTES] == key_id(OLD).encode()
    assert sealed[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES] == NONCE
    assert b"s3cr3t" not in sealed
    assert sealed_key_id(sealed) == keyring.current
    assert unseal(keyring, "p1", "API_TOKEN", sealed) == "s3cr3t-ü"


def test_the_same_value_with_another_nonce_is_another_ciphertext() -> None:
    keyring = ring(OLD)
    one = seal(keyring, "p1", "A", "v", NONCE)
    two = seal(keyring, "p1", "A", "v", b"\x02" * NONCE_BYTES)
    assert one != two
    assert unseal(keyring, "p1", "A", one) == unseal(keyring, "p1", "A", two) == "v"


def test_an_unknown_key_id_is_refused_naming_the_key_id_not_the_value() -> None:
    sealed = seal(ring(OLD), "p1", "A", "the-value", NONCE)
    with pytest.raises(UnsealError, match=key_id(OLD)) as caught:
        unseal(ring(NEW), "p1", "A", sealed)
    assert "the-value" not in str(caught.value)


@pytest.mark.parametrize("position", [KEY_ID_BYTES, KEY_ID_BYTES + NONCE_BYTES, -1])
def test_a_tampered_ciphertext_does_not_open(position: int) -> None:
    keyring = ring(OLD)
    sealed = bytearray(seal(keyring, "p1", "A", "value", NONCE))
    sealed[position] ^= 0x01
    with pytest.raises(UnsealError, match="tampered"):
        unseal(keyring, "p1", "A", bytes(sealed))


def test_a_truncated_ciphertext_does_not_open() -> None:
    keyring = ring(OLD)
    with pytest.raises(UnsealError):
        unseal(keyring, "p1", "A", seal(keyring, "p1", "A", "value", NONCE)[:20])


@pytest.mark.parametrize(
    ("project", "name"), [("p2", "A"), ("p1", "B"), ("p1\0A", ""), ("p", "1\0A")]
)
def test_a_ciphertext_moved_to_another_secret_or_project_does_not_open(
    project: str, name: str
) -> None:
    keyring = ring(OLD)
    sealed = seal(keyring, "p1", "A", "value", NONCE)
    with pytest.raises(UnsealError):
        unseal(keyring, project, name, sealed)


def test_after_a_rotation_old_values_open_and_new_ones_use_the_new_key() -> None:
    before = seal(ring(OLD), "p1", "A", "old-value", NONCE)
    rotated = ring(NEW, OLD)
    assert rotated.current == key_id(NEW)
    assert unseal(rotated, "p1", "A", before) == "old-value"
    after = seal(rotated, "p1", "A", "new-value", NONCE)
    assert sealed_key_id(after) == key_id(NEW)
    with pytest.raises(UnsealError):  # the old key alone cannot read the new value
        unseal(ring(OLD), "p1", "A", after)


@pytest.mark.parametrize(
    ("current", "old", "message"),
    [
        ("not base64!", None, "SPOOL_SECRETS_KEY is not valid base64"),
        (b64(b"short"), None, "must decode to 32 bytes, not 5"),
        (b64(NEW), f"{b64(OLD)},xx", r"SPOOL_SECRETS_KEYS\[1\] is not valid base64"),
    ],
)
def test_a_bad_key_setting_is_named_without_repeating_it(
    current: str, old: str | None, message: str
) -> None:
    with pytest.raises(SecretsKeyError, match=message) as caught:
        keyring_from(current, old)
    assert current not in str(caught.value)


def test_no_key_is_no_keyring_and_a_keyring_never_shows_its_keys() -> None:
    assert keyring_from(None, None) is None
    assert keyring_from("", b64(OLD)) is None
    assert b64(OLD) not in repr(ring(OLD))
    assert str(OLD) not in repr(ring(OLD))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("API_TOKEN", None),
        ("_X1", None),
        ("api_token", "must match"),
        ("1ABC", "must match"),
        ("A-B", "must match"),
        ("", "must match"),
        ("A" * 129, "must match"),
        ("SPOOL_AGENT_TOKEN", "reserved"),
        ("PYTHONPATH", "reserved"),
    ],
)
def test_secret_names_are_environment_variable_names(name: str, reason: str | None) -> None:
    errors = name_errors(name)
    assert [e.field for e in errors] == ([] if reason is None else ["name"])
    assert reason is None or reason in errors[0].reason


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("x", None),
        ("é" * 32768, None),  # 64 KiB exactly, in bytes
        ("", "must not be empty"),
        ("é" * 32768 + "x", "65537 bytes"),
        ("a\0b", "NUL"),
    ],
)
def test_secret_values_are_bounded_and_never_repeated(value: str, reason: str | None) -> None:
    errors = value_errors(value)
    assert [e.field for e in errors] == ([] if reason is None else ["value"])
    assert reason is None or reason in errors[0].reason
    assert all(value not in e.reason for e in errors if value)


def test_a_services_missing_secrets_are_named_by_position() -> None:
    errors = missing_secrets(["A", "B", "C"], {"A", "C"})
    assert [(e.field, e.reason) for e in errors] == [
        ("secrets[1]", "the project has no secret 'B'")
    ]
    assert missing_secrets([], set()) == []
