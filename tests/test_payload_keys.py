"""Payload keys and the codec without a server: where keys come from, how a bad key source
is refused (naming the setting, never echoing key material), rotation, and how a sealed
payload refuses to open under an unknown key or after tampering."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from typer.testing import CliRunner

from duecourse.cli.app import app
from duecourse.security.payload_codec import (
    KEY_ID_FIELD,
    EncryptionCodec,
    PayloadKeyUnknown,
    PayloadTampered,
)
from duecourse.security.payload_keys import (
    PayloadKeyError,
    add_key,
    ensure_key_file,
    load_key_ring,
    new_key_line,
    parse_keys,
    read_key_file,
)
from tests.support.sealing import KEY_SETTINGS

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER = base64.b64encode(bytes(range(1, 33))).decode()
SETTING = "DUECOURSE_PAYLOAD_KEY_FILE"  # every refusal names the settings to fix


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def test_a_key_source_lists_keys_oldest_first_and_the_last_one_seals() -> None:
    ring = parse_keys(f"# rotated in May\nk1:{KEY}\n\nk2:{OTHER}\n", "test")
    assert ring.key_ids == ["k1", "k2"] and ring.newest[0] == "k2"
    assert parse_keys(f"k1:{KEY},k2:{OTHER}", "inline").key_ids == ["k1", "k2"]


@pytest.mark.parametrize(("text", "says"), [
    ("k1", "is not '<key id>:<base64 key>'"),
    (f"bad id!:{KEY}", "is not '<key id>:<base64 key>'"),
    ("k1:not-base64-at-all!!", "is not 32 bytes of base64"),
    (f"k1:{base64.b64encode(b'short').decode()}", "is not 32 bytes of base64"),
    (f"k1:{KEY}\nk1:{OTHER}", "twice with different material"),
    ("# only a comment", "holds no payload key"),
])
def test_a_malformed_key_source_is_refused_without_echoing_it(text: str, says: str) -> None:
    with pytest.raises(PayloadKeyError) as refused:
        parse_keys(text, "DUECOURSE_PAYLOAD_KEYS")
    message = str(refused.value)
    assert says in message and "DUECOURSE_PAYLOAD_KEYS" in message
    assert "\n" not in message
    for secret in (KEY, OTHER, "not-base64-at-all!!"):
        assert secret not in message


def test_keys_come_from_exactly_one_place(tmp_path: Path) -> None:
    with pytest.raises(PayloadKeyError, match="keep one of them"):
        load_key_ring(f"k1:{KEY}", tmp_path / "keys", tmp_path)
    with pytest.raises(PayloadKeyError, match=f"does not exist: set {SETTING}"):
        load_key_ring(None, tmp_path / "missing", tmp_path)
    with pytest.raises(PayloadKeyError, match=f"no payload key is configured.*{SETTING}"):
        load_key_ring(None, None, tmp_path)
    (tmp_path / "payload-keys").write_text(f"d1:{KEY}\n")
    assert load_key_ring(None, None, tmp_path).key_ids == ["d1"]  # `duecourse dev`'s file


def test_new_keys_append_to_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "payload-keys"
    first = add_key(path)
    second = add_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path).key_ids == [first, second]
    assert ensure_key_file(path).key_ids == [first, second]  # an existing file is kept
    (tmp_path / "broken").write_text("k1:oops\n")
    with pytest.raises(PayloadKeyError):
        add_key(tmp_path / "broken")
    assert (tmp_path / "broken").read_text() == "k1:oops\n"


async def test_sealed_payloads_carry_the_key_id_and_open_to_the_original() -> None:
    codec = EncryptionCodec(parse_keys(f"k1:{KEY}", "test"))
    [sealed] = await codec.encode([plain('{"name": "欧阳秋雨"}')])
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert sealed.metadata[KEY_ID_FIELD] == b"k1"
    assert "欧阳秋雨".encode() not in sealed.SerializeToString()
    assert (await codec.decode([sealed])) == [plain('{"name": "欧阳秋雨"}')]
    unsealed = plain("from before encryption")
    assert (await codec.decode([unsealed])) == [unsealed]


async def test_after_rotation_old_payloads_open_and_new_ones_use_the_newest_key() -> None:
    old = EncryptionCodec(parse_keys(f"k1:{KEY}", "old ring"))
    rotated = EncryptionCodec(parse_keys(f"k1:{KEY}\nk2:{OTHER}", "rotated ring"))
    [before] = await old.encode([plain("sealed before rotation")])
    assert (await rotated.decode([before])) == [plain("sealed before rotation")]
    [after] = await rotated.encode([plain("sealed after rotation")])
    assert after.metadata[KEY_ID_FIELD] == b"k2"
    with pytest.raises(PayloadKeyUnknown, match="'k2'"):
        await old.decode([after])


async def test_an_unknown_key_id_or_an_altered_payload_never_opens() -> None:
    codec = EncryptionCodec(parse_keys(f"k1:{KEY}\nk2:{OTHER}", "test"))
    [sealed] = await codec.encode([plain("secret")])
    stranger = EncryptionCodec(parse_keys(new_key_line(), "another ring"))
    with pytest.raises(PayloadKeyUnknown, match=r"key id 'k2'.*add that key back"):
        await stranger.decode([sealed])
    altered = Payload()
    altered.CopyFrom(sealed)
    altered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(PayloadTampered, match="'k2'"):
        await codec.decode([altered])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID_FIELD] = b"k1"  # passed off under the other key
    with pytest.raises(PayloadTampered, match="'k1'"):
        await codec.decode([relabelled])


def test_the_commands_show_key_ids_and_never_key_material(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "payload-keys"
    runner = CliRunner()
    made = runner.invoke(app, ["payload-keys", "new", "--file", str(path)])
    rotated = runner.invoke(app, ["payload-keys", "new", "--file", str(path)])
    assert made.exit_code == 0 and rotated.exit_code == 0, made.output + rotated.output
    first, second = read_key_file(path).key_ids
    assert f"Payload key {first} created" in made.output
    assert f"Payload key {second} appended as the newest key" in rotated.output
    monkeypatch.setenv(SETTING, str(path))
    listed = runner.invoke(app, ["payload-keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"{first}\n" in listed.output and f"{second}  (newest" in listed.output
    material = [line.partition(":")[2] for line in path.read_text().splitlines()]
    for output in (made.output, rotated.output, listed.output):
        assert not any(m in output for m in material)
    assert "restart" in runner.invoke(app, ["payload-keys", "--help"]).output.lower()
    monkeypatch.setenv(SETTING, str(tmp_path / "missing"))
    missing = runner.invoke(app, ["payload-keys", "list"])
    assert missing.exit_code == 1 and SETTING in missing.output
