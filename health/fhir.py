"""Bills and charges as FHIR R4 resources (``Invoice``, ``ChargeItem``), for hospitals' systems.

Pure functions over what the service gives: no database here. Amounts become FHIR ``Money``
(a decimal in major units: ₩50,000 is 50000, ¥10.50 is 10.5). An Invoice is ``issued`` while
unpaid, ``balanced`` once settled, ``cancelled`` when nothing is owed any more (every line
voided, or refunded in full).
"""

import json
from decimal import Decimal
from typing import Any

from flask import Response

from core.money import minor_digits

CONTENT_TYPE = "application/fhir+json"
SYSTEM = "urn:civic-super-app"
_INVOICE_STATUS = {
    "open": "issued",
    "overdue": "issued",
    "settled": "balanced",
    "refunded": "cancelled",
    "cancelled": "cancelled",
}


def respond(resource: dict[str, Any]) -> Response:
    return Response(json.dumps(resource, ensure_ascii=False), mimetype=CONTENT_TYPE)


def money(amount: int, currency: str) -> dict[str, Any]:
    """FHIR Money from minor units."""
    digits = minor_digits(currency)
    value: int | float = amount if digits == 0 else float(Decimal(amount).scaleb(-digits))
    return {"value": value, "currency": currency}


def _instant(value: Any) -> str:
    return str(value.isoformat())


def _patient(patient_id: str) -> dict[str, Any]:
    return {"identifier": {"system": f"{SYSTEM}:citizen", "value": patient_id}}


def _hospital(hospital: dict[str, Any]) -> dict[str, Any]:
    return {
        "identifier": {"system": f"{SYSTEM}:organisation", "value": hospital["id"]},
        "display": hospital["name"],
    }


def invoice(bill: dict[str, Any]) -> dict[str, Any]:
    """A bill (``visits.fhir_bill``) as an R4 Invoice."""
    currency = bill["currency"]
    resource: dict[str, Any] = {
        "resourceType": "Invoice",
        "id": bill["id"],
        "identifier": [{"system": f"{SYSTEM}:health-bill", "value": bill["id"]}],
        "status": _INVOICE_STATUS[bill["status"]],
        "subject": _patient(bill["patient_id"]),
        "issuer": _hospital(bill["hospital"]),
        "date": _instant(bill["issued_at"]),
        "lineItem": [
            {
                "sequence": item["line"],
                "chargeItemReference": {"reference": f"ChargeItem/{item['id']}"},
                "priceComponent": [{"type": "base", "amount": money(item["amount"], currency)}],
            }
            for item in bill["items"]
        ],
        "totalNet": money(bill["total"], currency),
        "totalGross": money(bill["total"], currency),
        "paymentTerms": f"Settle by {_instant(bill['deadline'])}",
    }
    if bill["status"] == "cancelled":
        resource["cancelledReason"] = "Every charge was voided."
    if bill["refunded_amount"]:
        refunded = money(bill["refunded_amount"], currency)
        resource["note"] = [{"text": f"Refunded {refunded['value']} {currency}."}]
        if bill["status"] == "refunded":
            resource["cancelledReason"] = "Refunded in full."
    return resource


def _charge_status(charge: dict[str, Any]) -> str:
    if charge["status"] == "voided":
        return "entered-in-error"
    if charge["bill_status"] is None:
        return "billable"
    if charge["bill_status"] == "cancelled":
        return "not-billable"
    return "billed"


def charge_item(charge: dict[str, Any]) -> dict[str, Any]:
    """A charge (``visits.fhir_charge``) as an R4 ChargeItem; ``priceOverride`` is the line's
    total (quantity times unit price), R4 having no other field for it."""
    hospital = charge["hospital"]
    resource: dict[str, Any] = {
        "resourceType": "ChargeItem",
        "id": charge["id"],
        "identifier": [{"system": f"{SYSTEM}:health-charge", "value": charge["id"]}],
        "status": _charge_status(charge),
        "code": {
            "coding": [
                {
                    "system": f"{SYSTEM}:hospital-charge-code:{hospital['id']}",
                    "code": charge["code"],
                    "display": charge["description"],
                }
            ],
            "text": charge["description"],
        },
        "subject": _patient(charge["patient_id"]),
        "occurrenceDateTime": _instant(charge["posted_at"]),
        "enteredDate": _instant(charge["posted_at"]),
        "performingOrganization": _hospital(hospital),
        "quantity": {"value": charge["quantity"]},
        "priceOverride": money(charge["amount"], charge["currency"]),
    }
    if charge["change_reason"]:
        resource["overrideReason"] = charge["change_reason"]
        resource["note"] = [{"text": charge["change_reason"]}]
    return resource
