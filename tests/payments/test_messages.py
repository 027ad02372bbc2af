"""What citizens read about their payments is in their language, amounts formatted for it."""

from payments import service

ME = "/api/v1/auth/me"
INBOX = "/api/v1/me/notifications"


def _charge_off_session(app, user_id, amount, currency):
    with app.app_context():  # a sweep: no request says whose language it is
        return service.charge(
            user_id,
            amount,
            currency,
            "hospital_bill",
            "bill-7",
            off_session=True,
            idempotency_key="bill-7-attempt-1",
        )


def test_a_citizen_who_reads_chinese_is_told_of_a_failed_off_session_charge_in_chinese(
    app, citizen, save_card
):
    citizen.api.request("PATCH", ME, 200, json={"locale": "zh"})
    save_card(citizen, "pm_card_chargeCustomerFail")
    payment = _charge_off_session(app, citizen.user.id, 5000, "CNY")
    assert payment.status == "failed"

    (message,) = citizen.api.get(INBOX, headers={"Accept-Language": "ko"})
    assert message["kind"] == "payment_failed"
    assert message["title"] == "请在应用内完成支付"
    assert message["body"] == (
        "您保存的银行卡扣款¥50.00未成功。您的银行卡交易被拒绝。请在应用内完成支付。"
    )
    (listed,) = citizen.api.get("/api/v1/payments")
    assert listed["failure_message"] == "您的银行卡交易被拒绝。"
    assert listed["failure_code"] == "card_declined"


def test_a_citizen_who_reads_korean_sees_won_without_decimals(app, citizen, save_card):
    citizen.api.request("PATCH", ME, 200, json={"locale": "ko"})
    save_card(citizen, "pm_card_chargeCustomerFail")
    _charge_off_session(app, citizen.user.id, 5000, "KRW")
    (message,) = citizen.api.get(INBOX)
    assert message["title"] == "앱에서 결제를 완료해 주세요"
    assert message["body"] == (
        "등록하신 카드로 ₩5,000 결제에 실패했습니다. 카드 승인이 거절되었습니다. "
        "앱에서 결제해 주세요."
    )


def test_a_refund_beyond_what_is_left_names_the_amount_in_the_readers_locale(
    app, admin, citizen, save_card
):
    save_card(citizen)
    with app.app_context():
        paid = service.charge(
            citizen.user.id, 5000, "KRW", "hospital_bill", "bill-8", idempotency_key="bill-8-a1"
        )
    admin.api.request("PATCH", ME, 200, json={"locale": "zh"})
    url = f"/api/v1/payments/{paid.id}/refunds"
    error = admin.api.post(url, {"amount": 5001, "reason": "too much"}, expected=422)
    assert error["errors"]["json"]["amount"] == ["可退款金额为₩5,000。"]


def test_a_card_refused_by_stripe_is_explained_without_stripes_english(citizen):
    body = {"payment_method": "pm_card_doesNotExist", "consent_off_session": True}
    body["consent_text_version"] = "2026-11"
    refused = citizen.api.request(
        "POST", "/api/v1/payments/methods", 422, json=body, headers={"Accept-Language": "ko"}
    ).get_json()
    assert refused["errors"]["json"]["payment_method"] == [
        "카드를 등록하지 못했습니다. 카드 정보를 확인하거나 다른 카드를 사용해 주세요."
    ]
