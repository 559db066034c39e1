"""The one `Role`, the id types every layer shares, and statuses that are enums yet keep
the strings stored in continue-as-new state, saved histories and the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from duecourse.domain.actor import API_ROLES, PERSON_ROLES, ActorKind, Role
from duecourse.domain.agreements.terms import Assignment, SettlementResult, SettlementStatus
from duecourse.domain.case.state import StepRecord, StepStatus
from duecourse.domain.ids import AgentId, PlatformId, Reference
from duecourse.domain.money import Money
from duecourse.plain_words import PATTERN_WORDS
from duecourse.store import Ledger
from duecourse.store.keys import KeyStore


def test_a_role_acts_as_the_actor_kind_of_its_name() -> None:
    assert [r.value for r in Role] == ["platform", "agent", "supervisor", "ops", "codec"]
    for role in Role:
        actor = role.actor("someone")
        assert actor.kind is ActorKind(role.value) and str(actor) == f"{role}:someone"
    assert Role.PLATFORM not in PERSON_ROLES and set(PERSON_ROLES) < set(Role)
    assert Role.CODEC not in API_ROLES and set(API_ROLES) | {Role.CODEC} == set(Role)


async def test_a_key_keeps_its_role_as_stored(ledger: Ledger) -> None:
    keys = KeyStore(ledger.engine)
    key, token = await keys.create("desk-1", "supervisor")
    assert key.role is Role.SUPERVISOR
    verified = await keys.verify(token)
    assert verified is not None and verified.role is Role.SUPERVISOR
    assert (await keys.create("ops-1", Role.OPS))[0].role is Role.OPS
    assert [k.role for k in await keys.list()] == [Role.SUPERVISOR, Role.OPS]
    with pytest.raises(ValueError, match="unknown role 'admin'; one of platform, agent, "
                                         "supervisor, ops"):
        await keys.create("root", "admin")


@pytest.mark.parametrize(("kind", "good", "bad"), [
    (PlatformId, ["L-1001", "loan:2026.07_a", "x" * 64], ["-L1", "L 1", "L@1", "x" * 65, ""]),
    (AgentId, ["agent-7", "maria.garcia@lender", "a_b"], ["a:b", "@agent", "a/b", "x" * 65]),
    (Reference, ["PAY-1", "bank/2026/07:123"], ["/PAY", "PAY 1", "x" * 129]),
])
def test_each_id_type_takes_its_own_shape(kind: object, good: list[str],
                                          bad: list[str]) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(kind)
    for text in good:
        assert adapter.validate_python(text) == text
    for text in bad:
        with pytest.raises(ValidationError):
            adapter.validate_python(text)
    pattern = adapter.json_schema()["pattern"]
    assert pattern in PATTERN_WORDS, "every id pattern has its plain words"


def test_an_assignment_takes_an_agent_id_only() -> None:
    actor = Role.SUPERVISOR.actor("sup-1")
    assert Assignment(agent_id="maria@lender", actor=actor).agent_id == "maria@lender"
    with pytest.raises(ValidationError):
        Assignment(agent_id="loan:1", actor=actor)


class _Steps(BaseModel):
    steps: list[StepRecord]


def test_step_statuses_read_and_write_the_strings_saved_states_hold() -> None:
    saved = ('{"steps":[' + ",".join(
        f'{{"visit":1,"step":"s{i}","status":"{status}","at":"2026-07-01T09:00:00Z",'
        '"detail":""}' for i, status in enumerate(["sent", "skipped", "failed", "blocked",
                                                    "task"])) + "]}")
    steps = _Steps.model_validate_json(saved)
    assert [s.status for s in steps.steps] == list(StepStatus)
    assert steps.steps[0].status == "sent", "a literal still compares equal"
    assert steps.model_dump_json() == saved
    with pytest.raises(ValidationError):
        StepRecord(visit=1, step="s", status="deferred", at=datetime.now(UTC))


def test_a_settlement_result_carries_its_status_as_an_enum() -> None:
    result = SettlementResult(settlement_id="SET1", status="PENDING_APPROVAL",
                              amount=Money(amount=Decimal("600.00"), currency="CNY"),
                              discount=Decimal("0.5"), needs_approval=True)
    assert result.status is SettlementStatus.PENDING_APPROVAL
    assert result.model_dump(mode="json")["status"] == "PENDING_APPROVAL"
    assert result.status.lower() == "pending_approval", "the CLI prints it so"
