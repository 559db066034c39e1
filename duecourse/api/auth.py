"""API-key authentication and role-based permissions.

Roles (`duecourse.domain.actor.Role`): `platform` starts loans, reports payments, cancels
and registers webhooks; `agent` works loans and tasks; `supervisor` does what agents do
plus legal approvals and deep settlements; `ops` reads everything and records legal case
events. A person's key acts as its name in its role; a platform key acts as its platform
(`platform:<platform id>` in the workflow and the ledger, whichever of the platform's keys
it was: before platforms, the key's name, which migration 0011 made the platform's id, so
old and new rows name the same actor). The platform owns the loans its keys hand over
first (`duecourse.store.owners`) and its webhooks; another platform's loan is hidden. A
revoked key gets 401, a key of a disabled platform 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from duecourse.api.problems import ProblemError
from duecourse.domain.actor import API_ROLES, Actor, Role
from duecourse.store.keys import ApiKey
from duecourse.store.owners import LoanOwners

EVERYONE = API_ROLES
DESK = (Role.AGENT, Role.SUPERVISOR)

bearer = HTTPBearer(auto_error=False, description="an API key: `Bearer dc_...`")


@dataclass(frozen=True)
class Principal:
    key: ApiKey

    @property
    def role(self) -> Role:
        return self.key.role

    @property
    def platform(self) -> str:
        """The platform a platform key acts for (a key from before platforms: its name)."""
        return self.key.platform_id or self.key.name

    @property
    def actor(self) -> Actor:
        if self.key.role is Role.PLATFORM:
            return Role.PLATFORM.actor(self.platform)
        return self.key.role.actor(self.key.name)


async def principal(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None,
                                           Depends(bearer)]) -> Principal:
    token = credentials.credentials if credentials else request.headers.get("x-api-key")
    if not token:
        raise ProblemError(401, "Missing or invalid API key",
                           "send an API key as 'Authorization: Bearer <key>'")
    key = await request.app.state.services.keys.verify(token)
    if key is None:
        raise ProblemError(401, "Missing or invalid API key",
                           "the API key is unknown or revoked")
    if key.platform_disabled_at is not None:
        raise ProblemError(403, "Platform disabled",
                           f"platform {key.platform_id} is disabled; ask the lender to "
                           "enable it again")
    return Principal(key)


def allow(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only keys with one of `roles`; on a loan's routes, a
    platform key only for its own loans or the lender's (another platform's loan is "not
    found", so its existence is not revealed either)."""

    async def check(request: Request,
                    who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role not in roles:
            role = who.role.value
            article = "an" if role[0] in "aeiou" else "a"
            raise ProblemError(403, "Forbidden", f"{article} {role} key may not do this; "
                               f"allowed: {', '.join(r.value for r in roles)}")
        loan_id = request.path_params.get("loan_id")
        if who.role is Role.PLATFORM and loan_id:
            owners = LoanOwners(request.app.state.services.ledger.engine)
            owner = await owners.owner_of(loan_id)
            if owner is not None and owner != who.platform:
                raise ProblemError(404, "Loan not found",
                                   f"no collection found for loan {loan_id}")
        return who

    return check


# Who may call a route: one parameter type per group of roles, so each route says it once.
Anyone = Annotated[Principal, Depends(allow(*EVERYONE))]
Platform = Annotated[Principal, Depends(allow(Role.PLATFORM))]
Desk = Annotated[Principal, Depends(allow(*DESK))]
"""An agent or a supervisor: who works loans."""
Staff = Annotated[Principal, Depends(allow(*DESK, Role.OPS))]
"""The lender's people (desk and ops), never a platform."""
Supervisor = Annotated[Principal, Depends(allow(Role.SUPERVISOR))]
Overseer = Annotated[Principal, Depends(allow(Role.SUPERVISOR, Role.OPS))]
"""Who oversees: the portfolio, the alerts, the legal cases."""
Ops = Annotated[Principal, Depends(allow(Role.OPS))]
