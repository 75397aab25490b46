"""Pure: project secrets sealed with AES-256-GCM under a keyring read from the environment.

A sealed value is `key id (8 ASCII bytes) + nonce (12 bytes) + AES-GCM output`; the project id
and the secret's name are its associated data, so a ciphertext copied to another secret (or
another project) does not open. The key id is derived from the key, so rotating is: set the
new key as SPOOL_SECRETS_KEY and list the old one in SPOOL_SECRETS_KEYS; old values still open
and are sealed under the new key when next written. The nonce is passed in (no randomness here).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_BYTES = 8


class SecretsKeyError(ValueError):
    """A configured key is not base64 of 32 bytes (the message never contains the key)."""


class UnsealError(Exception):
    """A ciphertext does not open: unknown key id, tampered, or moved to another secret."""


@dataclass(frozen=True)
class Keyring:
    """`current` seals; every key in `keys` (the current one included) opens."""

    current: str
    keys: Mapping[str, bytes] = field(repr=False)


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"spool-secrets-key-id\0" + key).hexdigest()[:KEY_ID_BYTES]


def decode_key(text: str, setting: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise SecretsKeyError(f"{setting} is not valid base64") from e
    if len(key) != KEY_BYTES:
        raise SecretsKeyError(f"{setting} must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def keyring_from(current: str | None, previous: str | None) -> Keyring | None:
    """The keyring of SPOOL_SECRETS_KEY (`current`) and SPOOL_SECRETS_KEYS (`previous`: old
    keys, comma-separated, still accepted for reading). None: no key configured."""
    if not current:
        return None
    key = decode_key(current, "SPOOL_SECRETS_KEY")
    keys = {key_id(key): key}
    for i, text in enumerate(t for t in (previous or "").split(",") if t.strip()):
        old = decode_key(text, f"SPOOL_SECRETS_KEYS[{i}]")
        keys.setdefault(key_id(old), old)
    return Keyring(key_id(key), keys)


def associated_data(project_id: str, name: str) -> bytes:
    return f"spool-secret\0{project_id}\0{name}".encode()


def seal(keyring: Keyring, project_id: str, name: str, value: str, nonce: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a nonce is {NONCE_BYTES} bytes")
    sealed = AESGCM(keyring.keys[keyring.current]).encrypt(
        nonce, value.encode(), associated_data(project_id, name)
    )
    return keyring.current.encode() + nonce + sealed


def sealed_key_id(ciphertext: bytes) -> str:
    return ciphertext[:KEY_ID_BYTES].decode("ascii", errors="replace")


def unseal(keyring: Keyring, project_id: str, name: str, ciphertext: bytes) -> str:
    kid = sealed_key_id(ciphertext)
    key = keyring.keys.get(kid)
    if key is None:
        raise UnsealError(f"secret '{name}' is sealed under key '{kid}', which is not configured")
    nonce = ciphertext[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES]
    body = ciphertext[KEY_ID_BYTES + NONCE_BYTES :]
    try:
        plain = AESGCM(key).decrypt(nonce, body, associated_data(project_id, name))
    except (InvalidTag, ValueError) as e:
        raise UnsealError(f"secret '{name}' does not open: tampered or not this secret's") from e
    return plain.decode()
