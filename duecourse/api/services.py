"""What the API's handlers use: one Temporal client, the ledger, the key store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from duecourse.settings import Settings
from duecourse.store.keys import KeyStore
from duecourse.store.ledger import Ledger
from duecourse.temporal.client import CollectionClient


@dataclass
class Services:
    client: CollectionClient
    ledger: Ledger
    keys: KeyStore
    settings: Settings


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


Svc = Annotated[Services, Depends(services)]
"""A route's services parameter: every router takes them the same way."""
