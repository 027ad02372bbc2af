"""FHIR R4 read access for hospitals, validated with fhir.resources (R4B models: the same
Invoice and ChargeItem as R4)."""

from fhir.resources.R4B.chargeitem import ChargeItem
from fhir.resources.R4B.invoice import Invoice

from tests.health.conftest import H, bill, item, post_charges, settle, visit


def _fhir(hospital, path, expected=200):
    response = hospital.api.request("GET", path, expected)
    if expected == 200:
        assert response.headers["Content-Type"].startswith("application/fhir+json")
    return response.get_json()


def test_a_bill_is_an_issued_invoice_then_balanced_once_settled(member, hospital):
    account = member()
    issued = bill(hospital, account, 30_000, 12_500)
    invoice = _fhir(hospital, f"/fhir/R4/Invoice/{issued['id']}")
    Invoice.model_validate(invoice)
    assert (invoice["id"], invoice["status"]) == (issued["id"], "issued")
    assert invoice["totalGross"] == {"value": 42_500, "currency": "KRW"}
    assert [line["sequence"] for line in invoice["lineItem"]] == [1, 2]
    assert [line["chargeItemReference"]["reference"] for line in invoice["lineItem"]] == [
        f"ChargeItem/{i['id']}" for i in issued["items"]
    ]
    assert invoice["issuer"]["display"] == "Seoul General"
    assert invoice["subject"]["identifier"]["value"] == account.user.id
    settle(account, "obama2")
    balanced = Invoice.model_validate(_fhir(hospital, f"/fhir/R4/Invoice/{issued['id']}"))
    assert balanced.status == "balanced"


def test_charges_are_charge_items_billable_then_billed_and_voided_ones_entered_in_error(
    member, hospital
):
    account = member()
    opened = visit(hospital, account)
    posted = post_charges(hospital, opened["id"], item(8_000, 2, code="XRAY"), item(500))
    xray, other = posted["charges"]
    charge = _fhir(hospital, f"/fhir/R4/ChargeItem/{xray['id']}")
    ChargeItem.model_validate(charge)
    assert charge["status"] == "billable"
    assert charge["code"]["coding"][0]["code"] == "XRAY" and charge["quantity"]["value"] == 2
    assert charge["priceOverride"] == {"value": 16_000, "currency": "KRW"}
    hospital.api.post(
        f"{H}/visits/{opened['id']}/charges/{other['id']}/void", {"reason": "duplicate"}
    )
    hospital.api.post(f"{H}/visits/{opened['id']}/close", expected=201)
    assert (
        ChargeItem.model_validate(_fhir(hospital, f"/fhir/R4/ChargeItem/{xray['id']}")).status
        == "billed"
    )
    voided = ChargeItem.model_validate(_fhir(hospital, f"/fhir/R4/ChargeItem/{other['id']}"))
    assert voided.status == "entered-in-error" and voided.overrideReason == "duplicate"


def test_a_bill_with_every_line_voided_is_a_cancelled_invoice(member, hospital):
    issued = bill(hospital, member(), 1_000)
    (line,) = issued["items"]
    hospital.api.post(
        f"{H}/visits/{issued['visit_id']}/charges/{line['id']}/void", {"reason": "not seen"}
    )
    invoice = Invoice.model_validate(_fhir(hospital, f"/fhir/R4/Invoice/{issued['id']}"))
    assert invoice.status == "cancelled" and invoice.cancelledReason


def test_amounts_in_a_currency_with_cents_are_decimals():
    from health.fhir import money

    assert money(1050, "CNY") == {"value": 10.5, "currency": "CNY"}
    assert money(5000, "KRW") == {"value": 5000, "currency": "KRW"}


def test_another_hospital_and_citizens_cannot_read_them(member, make_hospital):
    account = member()
    mine, theirs = make_hospital(), make_hospital()
    issued = bill(mine, account, 1_000)
    _fhir(theirs, f"/fhir/R4/Invoice/{issued['id']}", expected=404)
    _fhir(theirs, f"/fhir/R4/ChargeItem/{issued['items'][0]['id']}", expected=404)
    account.api.get(f"/fhir/R4/Invoice/{issued['id']}", expected=403)
