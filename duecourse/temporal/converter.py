"""The one data converter every client and worker uses: pydantic JSON, sealed by the
payload codec, with failure messages and stack traces sealed too (the SDK otherwise leaves
them in plain text in the history)."""

from __future__ import annotations

import dataclasses

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes

from duecourse.security.payload_codec import EncryptionCodec
from duecourse.security.payload_keys import KeyRing


def sealed_data_converter(ring: KeyRing) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes)
