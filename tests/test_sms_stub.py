"""`duecourse dev --sms`: the local gateway stub speaks the generic profile well enough for
the real SMS adapter - sending, the idempotency key, the lookup - and echoes each message
once."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from duecourse.channels import ChannelError, OutgoingMessage
from duecourse.channels.sms import sms_channel
from duecourse.cli.sms_stub import SENDER, StubSms, sms_stub
from duecourse.settings import Settings


def message(key: str, text: str = "您的还款已逾期 2 天。") -> OutgoingMessage:
    return OutgoingMessage(idempotency_key=key, channel="sms", recipient="+8613800138000",
                           subject=None, body=text)


async def test_the_stub_takes_each_message_once_and_answers_the_lookup(
        unused_tcp_port: int) -> None:
    echoed: list[StubSms] = []
    async with sms_stub(unused_tcp_port, echoed.append) as stub:
        settings = Settings(sms_url=stub.url, sms_token=SecretStr(stub.token),
                            sms_from=SENDER)
        channel = sms_channel(settings, None)  # type: ignore[arg-type]
        first = await channel.send(message("case-1:contact:1:notice-sms"))
        again = await channel.send(message("case-1:contact:1:notice-sms"))
        assert first == again, "the same key is the same message"
        assert [(e.to, e.text) for e in echoed] == [("+8613800138000", "您的还款已逾期 2 天。")]
        found = await channel.find("case-1:contact:1:notice-sms")
        assert (found.known, found.message_id) == (True, first)
        assert found.accepted_at is not None
        missing = await channel.find("case-1:contact:1:never")
        assert (missing.known, missing.message_id) == (True, None)
        wrong = Settings(sms_url=stub.url, sms_token=SecretStr("not-the-token"),
                         sms_from=SENDER)
        with pytest.raises(ChannelError) as refused:
            await sms_channel(wrong, None).send(message("k2"))  # type: ignore[arg-type]
        assert refused.value.permanent, "a wrong token is final"
        assert len(echoed) == 1
