"""AES-256-GCM payload codec: every payload bound for Temporal is sealed with the newest key.

A sealed payload's metadata names its encoding and key id (never the key), its data is a
12-byte nonce followed by the ciphertext of the whole original payload, and the key id is
authenticated with it (associated data), so a payload cannot be passed off under another key.
Payloads that were never sealed (histories from before encryption) pass through on decode;
a sealed one whose key this process lacks, or that fails authentication, is an error naming
the key id - never garbage and never plaintext.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from duecourse.security.payload_keys import KeyRing

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
KEY_ID_FIELD = "encryption-key-id"
CIPHER_FIELD = "encryption-cipher"
NONCE_BYTES = 12


class PayloadKeyUnknown(RuntimeError):
    """A sealed payload names a key id this process does not hold."""


class PayloadTampered(RuntimeError):
    """A sealed payload failed authentication with the key its metadata names."""


class EncryptionCodec(PayloadCodec):
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
        self._ciphers = {kid: AESGCM(material) for kid, material in ring.keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        key_id, _ = self.ring.newest
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, payload.SerializeToString(),
                                               key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID_FIELD: key_id.encode(),
                                 CIPHER_FIELD: CIPHER}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_FIELD, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyUnknown(
                f"payload sealed with key id {key_id!r}, which this process does not hold "
                f"(it holds {', '.join(self.ring.key_ids)} from {self.ring.source}): add that "
                "key back to the key source to read it")
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:],
                                   key_id.encode())
        except InvalidTag:
            raise PayloadTampered(f"payload sealed with key id {key_id!r} failed "
                                  "authentication: it was altered or sealed with another "
                                  "key under that id") from None
        opened = Payload()
        opened.ParseFromString(plain)
        return opened
