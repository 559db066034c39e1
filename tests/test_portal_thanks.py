"""Back from the payment provider's checkout (`/b/<token>?done=done_pay`) after paying in
full, the borrower's case is closed and the link no longer opens. Rather than the neutral
"cannot be opened" page, the reader gets a thank-you - the same bytes for a genuine closed
link as for a link that never was, so a third party holding either learns nothing of a
debt. Against the real app and a real worker on the time-skipping server (the rig of
tests/test_portal_page.py); the browser's side is tests/test_portal_browser.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from duecourse.domain.case.commands import PaymentReport
from duecourse.domain.money import Money
from duecourse.portal.tokens import PortalSigner
from duecourse.store import Ledger
from tests.test_portal_page import SECRET, Portal, _rig, settings

THANKS = {"en": "Thank you. If you made a payment, it is recorded as soon as the payment "
                "provider confirms it. This link is no longer active.",
          "zh-CN": "此链接已失效。"}


@pytest.fixture
async def rig(ts_env: WorkflowEnvironment, ledger: Ledger) -> AsyncIterator[Portal]:
    async for p in _rig(ts_env, ledger, settings()):
        yield p


def _same_answer(a: httpx.Response,
                 b: httpx.Response) -> tuple[bool, tuple[str, str]]:
    """What a reader (or a script) can tell apart: status, headers, bytes."""
    return (a.status_code, sorted(a.headers.items()), a.content) == \
        (b.status_code, sorted(b.headers.items()), b.content), (a.text, b.text)


async def test_back_from_paying_in_full_a_closed_link_and_a_garbage_one_get_one_thank_you(
        rig: Portal) -> None:
    loan, token = await rig.hand_over(currency="USD", jurisdiction="US", language="en",
                                      name="Sam Lee")
    back = await rig.http.get(f"/b/{token}", params={"done": "done_pay"})
    assert back.status_code == 200 and "Welcome back." in back.text, \
        "while the case is open the return shows the page itself (a part payment)"

    now = await rig.h.env.get_current_time()
    await rig.h.client.report_payment(loan.loan_id, PaymentReport(
        reference="CHECKOUT-FULL", amount=Money.of("1000.00", "USD"), paid_at=now))
    assert (await rig.h.client.result(loan.loan_id)).outcome == "PAID"

    signer = PortalSigner(SECRET.encode())
    expired = signer.mint(loan.loan_id, "any-case", now - timedelta(days=40),
                          timedelta(days=30))
    encoded, signature = token.split(".")
    tampered = f"{encoded[:-1]}{'A' if encoded[-1] != 'A' else 'B'}.{signature}"
    for language, thanks in THANKS.items():
        reader = {"Accept-Language": f"{language},en;q=0.5"}
        closed = await rig.http.get(f"/b/{token}?done=done_pay", headers=reader)
        assert closed.status_code == 200, closed.text
        assert thanks in closed.text and f'lang="{language}"' in closed.text, closed.text
        for other in ("garbage", expired, tampered):
            never = await rig.http.get(f"/b/{other}?done=done_pay", headers=reader)
            same, texts = _same_answer(closed, never)
            assert same, f"a closed link and {other!r} answer differently: {texts}"
        for secret in ("1,000", "1000", "$", "USD", "Acme Lending", "400-800-1234",
                       "Sam Lee", loan.loan_id, loan.borrower.borrower_id):
            assert secret not in closed.text, secret
        assert "<form" not in closed.text, "nothing to act on"

    # without the checkout's return the closed link is the neutral page, as before
    plain = await rig.http.get(f"/b/{token}")
    assert plain.status_code == 404 and "This link is not valid." in plain.text
    other_done = await rig.http.get(f"/b/{token}?done=done_plan")
    assert (other_done.status_code, other_done.content) == (404, plain.content)
