"""Languages: the locale of a request, translated errors, messages rendered for their reader."""

import inspect
from datetime import UTC, datetime

import marshmallow as ma
import pytest
from flask_babel import force_locale
from marshmallow import fields, validate
from werkzeug.exceptions import default_exceptions

from core import db, i18n
from core.i18n import Money, _l, format_money, localize_error, render, translate_text
from core.inbox import service as inbox
from tests.conftest import PASSWORD

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
BAD_REGISTRATION = {"email": "not-an-email", "password": "short", "name": "Chloe", "age": 7}


@pytest.fixture(autouse=True, scope="module")
def _compiled_catalogs():
    stale = list(i18n.stale_catalogs())
    assert not stale, f"run `make compile-messages` first: {stale} not compiled"


def _ask(client, method, url, language, expected, **kw):
    headers = {**kw.pop("headers", {}), "Accept-Language": language}
    return client.request(method, url, expected, headers=headers, **kw)


def test_a_registration_error_asked_in_korean_answers_in_korean(client):
    response = _ask(client, "POST", REGISTER, "ko-KR,ko;q=0.9,en;q=0.5", 422, json=BAD_REGISTRATION)
    body = response.get_json()
    assert response.headers["Content-Language"] == "ko"
    assert "Accept-Language" in response.headers["Vary"]
    assert body["message"] == "입력하신 정보 중 올바르지 않은 항목이 있습니다."
    assert body["errors"]["json"] == {
        "email": ["올바른 이메일 주소가 아닙니다."],
        "password": ["10자 이상 128자 이하로 입력해 주세요."],
        "age": ["알 수 없는 항목입니다."],
    }
    assert (body["code"], body["status"]) == (422, "Unprocessable Entity")


def test_a_registration_error_asked_in_chinese_answers_in_simplified_chinese(client):
    for language in ("zh", "zh-CN", "zh-Hans-CN", "zh-TW,en;q=0.8"):
        response = _ask(client, "POST", REGISTER, language, 422, json=BAD_REGISTRATION)
        body = response.get_json()
        assert response.headers["Content-Language"] == "zh", language
        assert body["message"] == "您提交的信息有误，请检查后重试。"
        assert body["errors"]["json"]["email"] == ["邮箱地址格式不正确。"]
        assert body["errors"]["json"]["password"] == ["请输入10至128个字符。"]


def test_a_missing_field_and_a_taken_email_are_translated_too(client):
    body = _ask(client, "POST", REGISTER, "zh", 422, json={"email": "a@example.test"}).get_json()
    assert body["errors"]["json"]["password"] == ["此项为必填项。"]
    user = {"email": "taken@example.test", "password": PASSWORD, "name": "Chloe"}
    client.post(REGISTER, user, expected=201)
    taken = _ask(client, "POST", REGISTER, "ko", 409, json=user).get_json()
    assert taken["errors"] == {"json": {"email": ["이미 가입된 이메일입니다."]}}
    assert taken["message"] == "이미 가입된 이메일입니다."


def test_english_is_served_when_asked_and_the_default_otherwise(app, client, monkeypatch):
    english = _ask(client, "POST", REGISTER, "en-GB", 422, json=BAD_REGISTRATION)
    assert english.get_json()["errors"]["json"]["email"] == ["Not a valid email address."]
    assert english.headers["Content-Language"] == "en"
    monkeypatch.setitem(app.config, "DEFAULT_LOCALE", "ko")
    for language in ("fr-FR, de;q=0.5", "*", "zh;q=0"):
        response = _ask(client, "POST", REGISTER, language, 422, json=BAD_REGISTRATION)
        assert response.headers["Content-Language"] == "ko", language
    silent = client.request("POST", REGISTER, 422, json=BAD_REGISTRATION)
    assert silent.headers["Content-Language"] == "ko"
    assert silent.get_json()["errors"]["json"]["age"] == ["알 수 없는 항목입니다."]


def test_korean_and_chinese_are_sent_as_utf8_not_escaped(client):
    raw = _ask(client, "POST", REGISTER, "ko", 422, json=BAD_REGISTRATION).get_data()
    assert "알 수 없는 항목입니다.".encode() in raw and b"\\u" not in raw


def test_a_citizen_saves_a_locale_sees_it_and_it_wins_over_accept_language(citizen):
    assert citizen.api.get(ME)["locale"] is None
    response = citizen.api.request("PATCH", ME, 200, json={"locale": "zh"})
    assert response.get_json()["locale"] == "zh"
    assert citizen.api.get(ME)["locale"] == "zh"

    refused = citizen.api.request(
        "PATCH", ME, 422, json={"locale": "fr"}, headers={"Accept-Language": "ko"}
    )
    assert refused.headers["Content-Language"] == "zh"
    assert refused.get_json()["errors"]["json"]["locale"] == ["必须是以下之一：ko, en, zh。"]


def test_clearing_the_saved_locale_follows_accept_language_again(citizen):
    citizen.api.request("PATCH", ME, 200, json={"locale": "zh"})
    assert citizen.api.request("PATCH", ME, 200, json={"locale": None}).get_json()["locale"] is None
    response = citizen.api.request("GET", ME, 200, headers={"Accept-Language": "ko"})
    assert response.headers["Content-Language"] == "ko"


def test_a_locale_chosen_at_registration_is_saved_and_shown(client):
    body = {"email": "wei@example.test", "password": PASSWORD, "name": "Wei", "locale": "zh"}
    assert client.post(REGISTER, body, expected=201)["locale"] == "zh"
    tokens = client.post(LOGIN, {"email": body["email"], "password": PASSWORD})
    me = client.as_token(tokens["access_token"]).request("GET", ME, 200)
    assert me.get_json()["locale"] == "zh" and me.headers["Content-Language"] == "zh"
    assert _ask(client, "POST", REGISTER, "ko", 422, json={**body, "locale": "ja"}).get_json()[
        "errors"
    ]["json"]["locale"] == ["다음 중 하나여야 합니다: ko, en, zh."]


def test_an_organisation_has_no_locale_to_save_but_is_answered_in_its_language(
    client, make_organisation
):
    _, key = make_organisation("hospital")
    caller = client.as_api_key(key)
    forbidden = caller.request(
        "PATCH", ME, 403, json={"locale": "ko"}, headers={"Accept-Language": "ko"}
    )
    assert forbidden.get_json()["message"] == "이 기능을 사용할 권한이 없습니다."
    assert caller.get(ME)["kind"] == "organisation"


def test_errors_raised_by_services_are_in_the_readers_language(client, citizen):
    login = {"email": citizen.user.email, "password": "wrong-password-123"}
    wrong = _ask(client, "POST", LOGIN, "zh", 401, json=login).get_json()
    assert wrong["message"] == "邮箱或密码错误。"
    citizen.api.request("PATCH", ME, 200, json={"locale": "ko"})
    missing = citizen.api.request("POST", "/api/v1/me/notifications/nope/read", 404)
    assert missing.get_json()["message"] == "알림을 찾을 수 없습니다."


def test_http_errors_of_the_framework_are_translated(app, client):
    unknown = _ask(client, "GET", "/api/v1/nothing-here", "ko", 404).get_json()
    assert unknown == {
        "code": 404,
        "status": "Not Found",
        "message": "요청하신 정보를 찾을 수 없습니다.",
    }
    method = _ask(client, "DELETE", LOGIN, "zh", 405)
    assert method.get_json()["message"] == "该地址不支持此请求方法。"
    assert "POST" in method.headers["Allow"]
    anonymous = _ask(client, "GET", ME, "zh", 401).get_json()
    assert anonymous["message"] == "请先登录。"
    too_big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    large = _ask(client, "POST", REGISTER, "ko", 413, data=too_big, content_type="application/json")
    assert large.get_json()["message"] == "요청 크기가 너무 큽니다."
    broken = _ask(client, "POST", REGISTER, "zh", 400, data="{", content_type="application/json")
    assert broken.get_json()["errors"] == {"json": ["请求正文不是有效的 JSON。"]}


def test_a_rate_limit_is_explained_in_a_sentence_not_as_the_limit(client):
    for _ in range(10):  # LOGIN_RATE_LIMIT: 10 per minute, counted before the body is read
        _ask(client, "POST", LOGIN, "zh", 422, json={})
    limited = _ask(client, "POST", LOGIN, "zh", 429, json={})
    assert limited.get_json()["message"] == "请求过于频繁，请稍后再试。"
    assert "Retry-After" in limited.headers


@pytest.mark.parametrize("status", sorted(i18n.HTTP_MESSAGES))
def test_every_framework_http_error_has_a_sentence_in_each_language(app, status):
    description = default_exceptions[status].description
    for language in ("ko", "zh"):
        with app.test_request_context(headers={"Accept-Language": language}):
            body = localize_error({"code": status, "message": description}, status)
        assert body["message"] != description and not body["message"].isascii(), language
    with app.test_request_context(headers={"Accept-Language": "ko"}):
        own = localize_error({"code": status, "message": "이미 번역된 메시지."}, status)
    assert own["message"] == "이미 번역된 메시지."  # a module's own message is left alone


def test_every_message_marshmallow_can_write_on_loading_is_translated(app):
    """A marshmallow upgrade that rewords a message fails here, not in front of a citizen."""
    samples = {"min": 1, "max": 9, "equal": 3, "choices": "a, b", "other": "x", "values": "c"}
    samples |= {"obj_type": "datetime", "awareness": "aware", "input": "x"}
    english = set()
    for cls in [*vars(fields).values(), *vars(validate).values()]:
        if not inspect.isclass(cls):
            continue
        english |= set(getattr(cls, "default_error_messages", {}).values())
        english |= {v for k, v in vars(cls).items() if k.startswith(("message", "default_message"))}
    english |= {"Unknown field.", "Invalid input type.", "Invalid JSON body."}
    range_ops = {"min_op": "greater than or equal to", "max_op": "less than or equal to"}
    rendered = set()
    for message in english:
        if not isinstance(message, str) or "cannot be formatted" in message:
            continue  # dumping errors: a 500, never shown with the message
        if "{min_op}" in message or "{max_op}" in message:
            message = message.format(**range_ops)
        rendered.add(message.format(**samples) if "{" in message else message)
    rendered -= {"greater than", "greater than or equal to", "less than", "less than or equal to"}
    with app.test_request_context():
        for locale in ("ko", "zh"):
            with force_locale(locale):
                untranslated = sorted(m for m in rendered if translate_text(m) == m)
            assert untranslated == [], locale


def test_money_is_formatted_for_the_locale_and_currency():
    assert format_money(5000, "KRW", "ko") == "₩5,000"
    assert format_money(5000, "CNY", "zh") == "¥50.00"
    assert format_money(5000, "KRW", "zh") == "₩5,000"
    assert format_money(1050, "USD", "en") == "$10.50"


def test_a_message_is_rendered_with_money_and_the_city_time_for_its_reader(app, monkeypatch):
    monkeypatch.setitem(app.config, "CITY_TIMEZONE", "Asia/Shanghai")
    when = datetime(2026, 11, 3, 6, 4, tzinfo=UTC)  # 14:04 in Hangzhou
    message = "We could not charge %(amount)s to your saved card. %(reason)s Please pay in the app."
    reason = _l("Your card was declined.")
    with app.app_context():
        zh = render(message, "zh", {"amount": Money(5000, "CNY"), "reason": reason})
        assert zh == "您保存的银行卡扣款¥50.00未成功。您的银行卡交易被拒绝。请在应用内完成支付。"
        ko = render(_l("Refundable amount is %(amount)s."), "ko", {"amount": Money(5000, "KRW")})
        assert ko == "환불 가능한 금액은 ₩5,000입니다."
        assert i18n.format_time(when, "zh") == "2026年11月3日 14:04"
        assert i18n.format_time(when, "ko") == "2026년 11월 3일 오후 2:04"
        assert i18n.format_time(when, "en") == "Nov 3, 2026, 2:04 PM"


def test_an_inbox_message_is_written_in_the_recipients_locale_not_the_senders(app, citizen):
    citizen.api.request("PATCH", ME, 200, json={"locale": "zh"})
    with app.test_request_context(headers={"Accept-Language": "ko"}), force_locale("ko"):
        inbox.notify(
            citizen.user.id,
            "test",
            _l("Please complete your payment in the app"),
            _l("Refundable amount is %(amount)s."),
            params={"amount": Money(5000, "CNY")},
        )
        db.session.commit()
    (message,) = citizen.api.get("/api/v1/me/notifications")
    assert (message["title"], message["body"]) == ("请在应用内完成支付", "可退款金额为¥50.00。")


def test_a_recipient_who_chose_nothing_reads_the_default_locale(app, citizen, monkeypatch):
    monkeypatch.setitem(app.config, "DEFAULT_LOCALE", "ko")
    with app.app_context():
        inbox.notify(citizen.user.id, "test", _l("Please complete your payment in the app"), "")
        db.session.commit()
    assert citizen.api.get("/api/v1/me/notifications")[0]["title"] == "앱에서 결제를 완료해 주세요"


def test_outside_a_request_messages_are_english_for_operators(app, monkeypatch):
    monkeypatch.setitem(app.config, "DEFAULT_LOCALE", "ko")
    with app.app_context():
        assert str(_l("No such payment.")) == "No such payment."
        amount = _l("Refundable amount is %(amount)s.", amount=Money(1050, "USD"))
        assert str(amount) == "Refundable amount is $10.50."


def test_a_lazy_message_renders_in_the_locale_current_when_it_is_read(app):
    message = _l("Amount exceeds the maximum of %(maximum)s.", maximum=Money(100, "KRW"))
    with app.test_request_context(headers={"Accept-Language": "zh"}):
        assert str(message) == "金额不能超过₩100。"
    with app.test_request_context(headers={"Accept-Language": "ko"}):
        assert str(message) == "금액은 최대 ₩100까지 가능합니다."


def test_an_unsupported_default_locale_is_refused(app, tmp_path):
    from tests.conftest import build_app

    with pytest.raises(RuntimeError, match="DEFAULT_LOCALE"):
        build_app(app.config["DATABASE_URL"], tmp_path, DEFAULT_LOCALE="ja")


def test_a_schema_validation_error_raised_with_underscore_is_in_the_request_locale(app):
    class Consent(ma.Schema):
        agreed = fields.Boolean(required=True)

        @ma.validates("agreed")
        def _must_agree(self, value, **_kwargs):
            if not value:
                raise ma.ValidationError(i18n._("Explicit consent is required to save a card."))

    with (
        app.test_request_context(headers={"Accept-Language": "ko"}),
        pytest.raises(ma.ValidationError) as error,
    ):
        Consent().load({"agreed": False})
    assert error.value.messages == {
        "agreed": ["카드를 등록하려면 명시적으로 동의해 주셔야 합니다."]
    }
