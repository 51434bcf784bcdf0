"""The refund, the invoice lookup and the cancellation of billing.remedy against Stripe's
published spec (Prism): each call once, conforming, recorded, and resumable after a crash."""

from __future__ import annotations

import pytest
from django.core import mail

from billing.models import OrderRemedy, RemedyPolicy, RemedyState
from billing.remedy import order_remedy_run, remedies_sweep
from tests.factories import OrderFactory

pytestmark = pytest.mark.django_db

SUB = "sub_remedy_1"


@pytest.fixture
def remedy(stripe_world):
    order = OrderFactory(stripe_subscription_id=SUB, email="ada@example.com")
    stripe_world.paid(SUB, amount=1599)
    return OrderRemedy.objects.create(
        order=order, policy=RemedyPolicy.REFUND, state=RemedyState.REFUNDING
    )


def conforming(world) -> None:
    """Every request was one the spec allows, and Stripe (the mock) said yes."""
    assert world.calls
    for call in world.calls:
        assert (call.status, call.violations) == (200, ""), (call.method, call.path)


def test_refund_and_cancel_make_each_call_once_with_the_orders_keys(stripe_world, remedy):
    result = order_remedy_run(remedy_id=remedy.pk)

    conforming(stripe_world)
    [listing] = stripe_world.made("GET", "/v1/invoices")
    assert (listing.params["subscription"], listing.params["status"]) == (SUB, "paid")
    [payments] = stripe_world.made("GET", "/v1/invoice_payments")
    invoice = stripe_world.invoices[SUB][0]["id"]
    assert (payments.params["invoice"], payments.params["status"]) == (invoice, "paid")
    [refund] = stripe_world.made("POST", "/v1/refunds")
    assert (
        refund.params["payment_intent"]
        == stripe_world.payments[invoice][0]["payment"]["payment_intent"]
    )
    assert "amount" not in refund.params  # the whole payment
    assert refund.idempotency_key == f"wopr-remedy-refund-{remedy.order_id}"
    [cancel] = stripe_world.made("DELETE", f"/v1/subscriptions/{SUB}")
    assert cancel.idempotency_key == f"wopr-remedy-cancel-{remedy.order_id}"
    remedy.refresh_from_db()
    assert remedy.state == RemedyState.DONE
    assert remedy.stripe_invoice_id == invoice
    assert remedy.stripe_refund_id == refund.body["id"]
    assert remedy.amount_cents == 1599
    assert remedy.refunded_at and remedy.subscription_cancelled_at and remedy.done_at
    assert result == "done"
    assert mail.outbox == []  # under policy refund the failure e-mail already said so


def test_the_task_run_twice_makes_no_second_call(stripe_world, remedy):
    order_remedy_run(remedy_id=remedy.pk)
    calls = len(stripe_world.calls)

    again = order_remedy_run(remedy_id=remedy.pk)

    assert len(stripe_world.calls) == calls
    assert again == "done"
    assert len(stripe_world.made("POST", "/v1/refunds")) == 1


def test_a_crash_between_refund_and_cancel_resumes_with_the_cancel_only(
    stripe_world, remedy, monkeypatch
):
    import billing.remedy

    def crash(client, remedy):
        raise KeyboardInterrupt("the worker died")

    cancel = billing.remedy._cancel
    monkeypatch.setattr(billing.remedy, "_cancel", crash)
    with pytest.raises(KeyboardInterrupt):
        order_remedy_run(remedy_id=remedy.pk)
    remedy.refresh_from_db()
    assert (remedy.state, bool(remedy.refunded_at)) == (RemedyState.REFUNDING, True)
    monkeypatch.setattr(billing.remedy, "_cancel", cancel)
    stripe_world_calls_before = len(stripe_world.made("POST", "/v1/refunds"))

    order_remedy_run(remedy_id=remedy.pk)

    conforming(stripe_world)
    assert stripe_world_calls_before == 1
    assert len(stripe_world.made("POST", "/v1/refunds")) == 1
    assert len(stripe_world.made("DELETE", f"/v1/subscriptions/{SUB}")) == 1
    remedy.refresh_from_db()
    assert remedy.state == RemedyState.DONE


def test_stripe_refusing_the_refund_fails_the_remedy_for_staff_without_the_key(
    stripe_world, remedy
):
    stripe_world.refuse("POST /v1/refunds")

    result = order_remedy_run(remedy_id=remedy.pk)

    remedy.refresh_from_db()
    assert remedy.state == RemedyState.FAILED
    assert "InvalidRequestError (HTTP 400)" in remedy.last_error
    assert "sk_test" not in remedy.last_error and "sk_test" not in result
    assert stripe_world.made("DELETE", f"/v1/subscriptions/{SUB}") == []
    assert remedy.refunded_at is None


def test_stripe_down_keeps_the_claim_and_the_sweep_asks_again(
    stripe_world, remedy, django_capture_on_commit_callbacks
):
    stripe_world.refuse("DELETE /v1/subscriptions/" + SUB, status=500)

    order_remedy_run(remedy_id=remedy.pk)
    remedy.refresh_from_db()
    assert (remedy.state, bool(remedy.refunded_at)) == (RemedyState.REFUNDING, True)
    assert "retrying" in remedy.last_error
    with django_capture_on_commit_callbacks(execute=True):
        swept = remedies_sweep()

    remedy.refresh_from_db()
    assert swept == 1
    assert remedy.state == RemedyState.DONE
    assert len(stripe_world.made("POST", "/v1/refunds")) == 1
    assert len(stripe_world.made("DELETE", f"/v1/subscriptions/{SUB}")) == 2


def test_stripe_failing_on_and_on_ends_failed_for_staff_instead_of_retrying_forever(
    stripe_world, remedy, monkeypatch
):
    monkeypatch.setattr("billing.remedy.REMEDY_MAX_ATTEMPTS", 3)
    OrderRemedy.objects.filter(pk=remedy.pk).update(attempts=1)
    stripe_world.refuse("DELETE /v1/subscriptions/" + SUB, status=500)

    order_remedy_run(remedy_id=remedy.pk)
    remedy.refresh_from_db()
    assert (remedy.state, remedy.attempts) == (RemedyState.REFUNDING, 2)
    stripe_world.refuse("DELETE /v1/subscriptions/" + SUB, status=500)
    order_remedy_run(remedy_id=remedy.pk)

    remedy.refresh_from_db()
    assert remedy.state == RemedyState.FAILED
    assert "kept failing (3 tries)" in remedy.last_error
    assert remedies_sweep() == 0  # a FAILED remedy waits for staff, it is not asked again


def test_a_subscription_that_took_no_money_is_cancelled_without_a_refund(stripe_world):
    order = OrderFactory(stripe_subscription_id="sub_trial", subscription_status="trialing")
    remedy = OrderRemedy.objects.create(
        order=order, policy=RemedyPolicy.REFUND, state=RemedyState.REFUNDING
    )

    order_remedy_run(remedy_id=remedy.pk)

    conforming(stripe_world)
    assert stripe_world.made("POST", "/v1/refunds") == []
    assert len(stripe_world.made("DELETE", "/v1/subscriptions/sub_trial")) == 1
    remedy.refresh_from_db()
    assert (remedy.state, remedy.amount_cents, remedy.stripe_refund_id) == ("done", 0, "")


def test_an_order_of_the_other_stripe_mode_is_never_sent_to_this_one(stripe_world):
    order = OrderFactory(stripe_subscription_id="sub_live", stripe_mode="live")
    remedy = OrderRemedy.objects.create(
        order=order, policy=RemedyPolicy.REFUND, state=RemedyState.REFUNDING
    )

    order_remedy_run(remedy_id=remedy.pk)

    remedy.refresh_from_db()
    assert stripe_world.calls == []
    assert remedy.state == RemedyState.FAILED
    assert "live mode" in remedy.last_error


def test_a_queued_remedy_is_left_alone_by_a_stray_task(stripe_world, remedy):
    OrderRemedy.objects.filter(pk=remedy.pk).update(
        state=RemedyState.QUEUED, policy=RemedyPolicy.STAFF
    )

    result = order_remedy_run(remedy_id=remedy.pk)

    assert stripe_world.calls == []
    assert result == "nothing to do: the remedy is queued"


def test_the_spec_mock_rejects_a_refund_the_spec_does_not_allow(stripe_world, remedy):
    """The mock is strict: a refund with a reason Stripe does not know is refused."""
    from billing.checkout import stripe_client

    with pytest.raises(Exception, match="Rejected by the spec"):
        stripe_client().v1.refunds.create(params={"payment_intent": "pi_1", "reason": "oops"})

    [call] = stripe_world.calls
    assert call.status == 400 and "reason" in call.violations
