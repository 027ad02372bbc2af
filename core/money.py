"""Money: an integer of minor units plus an ISO 4217 currency, never a float."""

from core.errors import InvalidInput
from core.i18n import Money, _l

# Stripe's zero-decimal currencies: ₩5,000 is 5000, ¥500 is 500.
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())  # noqa: SIM905
# Currencies the city accepts; all have zero or two minor digits.
SUPPORTED = ZERO_DECIMAL | frozenset("CNY USD EUR GBP HKD SGD AUD CAD TWD THB".split())  # noqa: SIM905


def minor_digits(currency: str) -> int:
    """How many minor-unit digits the currency has (0 for KRW and JPY, 2 for CNY and USD)."""
    return 0 if currency.upper() in ZERO_DECIMAL else 2


def check_amount(amount: int, currency: str, maximum: int) -> str:
    """Validate an amount of minor units; returns the upper-cased currency, or raises 422."""
    code = currency.upper()
    if code not in SUPPORTED:
        raise InvalidInput(
            _l("Currency %(currency)s is not supported.", currency=currency), field="currency"
        )
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput(_l("Amount must be an integer of minor units."), field="amount")
    if amount <= 0:
        raise InvalidInput(_l("Amount must be positive."), field="amount")
    if amount > maximum:
        raise InvalidInput(
            _l("Amount exceeds the maximum of %(maximum)s.", maximum=Money(maximum, code)),
            field="amount",
        )
    return code


def format_amount(amount: int, currency: str) -> str:
    """A human rendering for messages: ``KRW 5,000`` or ``USD 10.00``."""
    digits = minor_digits(currency)
    if digits == 0:
        return f"{currency.upper()} {amount:,}"
    major, minor = divmod(amount, 10**digits)
    return f"{currency.upper()} {major:,}.{minor:0{digits}d}"
