"""What a citizen reads when a card or a payment is refused, in their language.

Stripe's own message (English, kept in ``payments.failure_message`` for operators) is not shown
to citizens; its code is mapped to one of a few plain messages. Lost, stolen or suspected cards
read as a plain decline, as Stripe advises (the reason is between the citizen and their bank).
"""

from core.i18n import Message, _l

DECLINED = _l("Your card was declined.")
NOT_ACCEPTED = _l("The payment was not accepted.")
CARD_NOT_SAVED = _l("This card could not be saved. Please check it or use another card.")

_BY_CODE = {
    "insufficient_funds": _l("Your card has insufficient funds."),
    "expired_card": _l("Your card has expired."),
    "incorrect_cvc": _l("Your card's security code is incorrect."),
    "invalid_cvc": _l("Your card's security code is incorrect."),
    "incorrect_number": _l("Your card number is incorrect."),
    "invalid_number": _l("Your card number is incorrect."),
    "card_velocity_exceeded": _l("Your card has reached its limit."),
    "withdrawal_count_limit_exceeded": _l("Your card has reached its limit."),
    "card_not_supported": _l("Your card does not support this payment."),
    "currency_not_supported": _l("Your card does not support this payment."),
    "authentication_required": _l("Your bank needs you to confirm this payment."),
    "payment_intent_authentication_failure": _l("Your bank needs you to confirm this payment."),
    "processing_error": _l("Your card could not be processed. Please try again."),
    "try_again_later": _l("Your card could not be processed. Please try again."),
    "issuer_not_available": _l("Your card could not be processed. Please try again."),
}
_DECLINES = frozenset(
    {
        "card_declined",
        "generic_decline",
        "do_not_honor",
        "lost_card",
        "stolen_card",
        "pickup_card",
        "fraudulent",
        "restricted_card",
        "security_violation",
        "transaction_not_allowed",
        "not_permitted",
    }
)


def failure_reason(code: str | None, default: Message = NOT_ACCEPTED) -> Message:
    """The message (lazy, ``_l``) for a Stripe decline or error code."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code in _DECLINES:
        return DECLINED
    return default
