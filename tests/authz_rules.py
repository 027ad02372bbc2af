"""Who may call what: one declared rule per route (URL rule + method), the source of the
authorization matrix test (``tests/test_authz_matrix.py``) and of the README's table
(``devtools/authz_table.py``).

A rule names the callers that get through (``ok``: any answer but 401, 403, 404 or a server
error; a 400/409/422 from a caller who passed the checks counts as through), the callers that
pass the role check but find no such object because it is someone else's (``not_found``: 404),
and what the rest get: 401 when they bring no credentials the route accepts (nobody, or a
parking gateway key on a route for users and organisations), else 403. ``explicit`` overrides
single cells where a route answers otherwise (Open311's POST says 403 to everyone but its
clients, as the GeoReport spec asks).

The objects each route is called on belong to citizen A, official A's department, hospital A,
operator A (and its gateway A); the "B" callers are the same kind of caller without a claim on
them.
"""

from dataclasses import dataclass, field

ANONYMOUS = "anonymous"
CITIZEN = "citizen"
CITIZEN_B = "citizen_b"
OFFICIAL = "official"
OFFICIAL_B = "official_b"
ADMIN = "admin"
COMMISSION = "commission"
HOSPITAL = "hospital"
HOSPITAL_B = "hospital_b"
OPERATOR = "operator"
OPERATOR_B = "operator_b"
GATEWAY = "gateway"
GATEWAY_B = "gateway_b"
OPEN311 = "open311"

CALLERS: tuple[str, ...] = (
    ANONYMOUS,
    CITIZEN,
    CITIZEN_B,
    OFFICIAL,
    OFFICIAL_B,
    ADMIN,
    COMMISSION,
    HOSPITAL,
    HOSPITAL_B,
    OPERATOR,
    OPERATOR_B,
    GATEWAY,
    GATEWAY_B,
    OPEN311,
)
# What each caller is, for the README.
DESCRIPTIONS: dict[str, str] = {
    ANONYMOUS: "no credentials",
    CITIZEN: "citizen A (owns the citizen objects)",
    CITIZEN_B: "another citizen",
    OFFICIAL: "official of department A (CIVIL-REG, the application's)",
    OFFICIAL_B: "official of another department (ROADS)",
    ADMIN: "administrator",
    COMMISSION: "health commission",
    HOSPITAL: "hospital A (owns the visit, charges, bill)",
    HOSPITAL_B: "another hospital",
    OPERATOR: "parking operator A (owns the lot, spaces, sensors)",
    OPERATOR_B: "another parking operator",
    GATEWAY: "operator A's sensor gateway key",
    GATEWAY_B: "operator B's sensor gateway key",
    OPEN311: "Open311 client organisation",
}
USERS = frozenset({CITIZEN, CITIZEN_B, OFFICIAL, OFFICIAL_B, ADMIN, COMMISSION})
ORGANISATIONS = frozenset({HOSPITAL, HOSPITAL_B, OPERATOR, OPERATOR_B, OPEN311})
GATEWAYS = frozenset({GATEWAY, GATEWAY_B})
CITIZENS = frozenset({CITIZEN, CITIZEN_B})
OFFICIALS = frozenset({OFFICIAL, OFFICIAL_B})
HOSPITALS = frozenset({HOSPITAL, HOSPITAL_B})
OPERATORS = frozenset({OPERATOR, OPERATOR_B})
EVERYONE = frozenset(CALLERS)

OK = "ok"  # through the checks: any status but 401, 403, 404 and 5xx
IGNORED = "ignored"  # 200, and nothing applied: a gateway reporting another operator's sensors
NO_CREDENTIALS = frozenset({ANONYMOUS}) | GATEWAYS  # 401 on routes for users/organisations


@dataclass(frozen=True)
class Rule:
    ok: frozenset[str]
    not_found: frozenset[str] = frozenset()
    explicit: dict[str, int | str] = field(default_factory=dict)
    note: str = ""

    def expected(self, caller: str) -> int | str:
        """``"ok"``, ``"ignored"`` or the status ``caller`` must get."""
        if caller in self.explicit:
            return self.explicit[caller]
        if caller in self.ok:
            return OK
        if caller in self.not_found:
            return 404
        return 401 if caller in NO_CREDENTIALS else 403


def rule(
    *ok: str | frozenset[str],
    not_found: tuple[str, ...] = (),
    explicit: dict[str, int | str] | None = None,
    note: str = "",
) -> Rule:
    allowed: set[str] = set()
    for item in ok:
        allowed |= {item} if isinstance(item, str) else set(item)
    unknown = (allowed | set(not_found) | set(explicit or {})) - EVERYONE
    if unknown:
        raise ValueError(f"unknown callers: {sorted(unknown)}")
    return Rule(frozenset(allowed), frozenset(not_found), dict(explicit or {}), note)


PUBLIC = rule(EVERYONE)
ANY_USER = rule(USERS)
ANY_CALLER = rule(USERS | ORGANISATIONS)
ADMIN_ONLY = rule(ADMIN)
CITIZENS_OWN = rule(CITIZENS)  # each citizen their own (no object of another in the path)
A_CITIZENS_OBJECT = rule(CITIZEN, not_found=(CITIZEN_B,))
A_HOSPITALS_OBJECT = rule(HOSPITAL, not_found=(HOSPITAL_B,))
A_OPERATORS_OBJECT = rule(OPERATOR, not_found=(OPERATOR_B,))
APPLICATION_FOR_OFFICIAL = rule(OFFICIAL, not_found=(OFFICIAL_B,))
OPEN311_POST = rule(OPEN311, explicit={c: 403 for c in EVERYONE - {OPEN311}})
A_GATEWAY = rule(
    GATEWAY,
    note="a gateway key, checked by parking: any other credential is 401",
    explicit={GATEWAY_B: IGNORED, **{c: 401 for c in EVERYONE - GATEWAYS}},
)
NOT_JOINED = "citizen B has not joined pay-later: 404 for their own"

V1 = "/api/v1"
RULES: dict[str, Rule] = {
    # --- core: accounts, organisations, inbox, audit ---------------------------------------
    f"POST {V1}/auth/register": PUBLIC,
    f"POST {V1}/auth/login": PUBLIC,
    f"POST {V1}/auth/refresh": PUBLIC,
    f"POST {V1}/auth/logout": ANY_USER,
    f"GET {V1}/auth/me": ANY_CALLER,
    f"PATCH {V1}/auth/me": ANY_USER,
    f"GET {V1}/admin/audit": ADMIN_ONLY,
    f"GET {V1}/admin/organisations": ADMIN_ONLY,
    f"POST {V1}/admin/organisations": ADMIN_ONLY,
    f"GET {V1}/admin/organisations/<organisation_id>/api-keys": ADMIN_ONLY,
    f"POST {V1}/admin/organisations/<organisation_id>/api-keys": ADMIN_ONLY,
    f"DELETE {V1}/admin/organisations/<organisation_id>/api-keys/<key_id>": ADMIN_ONLY,
    f"GET {V1}/me/notifications": ANY_USER,
    f"POST {V1}/me/notifications/read-all": ANY_USER,
    f"POST {V1}/me/notifications/<notification_id>/read": rule(
        CITIZEN, not_found=tuple(USERS - {CITIZEN})
    ),
    # --- civic: catalog, credit -------------------------------------------------------------
    f"GET {V1}/civic/departments": ADMIN_ONLY,
    f"POST {V1}/civic/departments": ADMIN_ONLY,
    f"GET {V1}/civic/services": PUBLIC,
    f"POST {V1}/civic/services": ADMIN_ONLY,
    f"GET {V1}/civic/services/<code>": PUBLIC,
    f"PATCH {V1}/civic/services/<code>": ADMIN_ONLY,
    f"POST {V1}/civic/services/<code>/publish": ADMIN_ONLY,
    f"POST {V1}/civic/services/<code>/retire": ADMIN_ONLY,
    f"GET {V1}/civic/credit": CITIZENS_OWN,
    f"GET {V1}/civic/credit/bands": ADMIN_ONLY,
    f"PUT {V1}/civic/credit/bands": ADMIN_ONLY,
    f"POST {V1}/civic/credit/events": rule(ADMIN, OFFICIALS),
    # --- civic: applications, certificates, Open311 -----------------------------------------
    f"GET {V1}/civic/applications": CITIZENS_OWN,
    f"POST {V1}/civic/applications": CITIZENS_OWN,
    f"GET {V1}/civic/queue": rule(OFFICIALS),
    f"GET {V1}/civic/applications/<application_id>": rule(
        CITIZEN, OFFICIAL, not_found=(CITIZEN_B, OFFICIAL_B)
    ),
    f"GET {V1}/civic/applications/<application_id>/documents/<code>": rule(
        CITIZEN, OFFICIAL, not_found=(CITIZEN_B, OFFICIAL_B)
    ),
    f"POST {V1}/civic/applications/<application_id>/answers": A_CITIZENS_OBJECT,
    f"POST {V1}/civic/applications/<application_id>/pay": A_CITIZENS_OBJECT,
    f"POST {V1}/civic/applications/<application_id>/cancel": A_CITIZENS_OBJECT,
    f"GET {V1}/civic/applications/<application_id>/certificate": A_CITIZENS_OBJECT,
    f"POST {V1}/civic/applications/<application_id>/claim": APPLICATION_FOR_OFFICIAL,
    f"POST {V1}/civic/applications/<application_id>/request-info": APPLICATION_FOR_OFFICIAL,
    f"POST {V1}/civic/applications/<application_id>/approve": APPLICATION_FOR_OFFICIAL,
    f"POST {V1}/civic/applications/<application_id>/reject": APPLICATION_FOR_OFFICIAL,
    f"GET {V1}/civic/certificates/keys": PUBLIC,
    f"GET {V1}/civic/certificates/<code>": PUBLIC,
    f"POST {V1}/civic/certificates/<code>/revoke": ADMIN_ONLY,
    "GET /open311/v2/discovery.<any(json, xml):fmt>": PUBLIC,
    "GET /open311/v2/services.<any(json, xml):fmt>": PUBLIC,
    "GET /open311/v2/services/<service_code>.<any(json, xml):fmt>": PUBLIC,
    "GET /open311/v2/requests.<any(json, xml):fmt>": PUBLIC,
    "POST /open311/v2/requests.<any(json, xml):fmt>": OPEN311_POST,
    "GET /open311/v2/requests/<request_id>.<any(json, xml):fmt>": PUBLIC,
    "GET /open311/v2/tokens/<token>.<any(json, xml):fmt>": PUBLIC,
    # --- payments ---------------------------------------------------------------------------
    f"GET {V1}/payments": CITIZENS_OWN,
    f"GET {V1}/payments/<payment_id>": rule(CITIZEN, ADMIN, not_found=(CITIZEN_B,)),
    f"POST {V1}/payments/<payment_id>/refunds": ADMIN_ONLY,
    f"GET {V1}/payments/methods": CITIZENS_OWN,
    f"POST {V1}/payments/methods": CITIZENS_OWN,
    f"DELETE {V1}/payments/methods/<card_id>": A_CITIZENS_OBJECT,
    f"POST {V1}/payments/webhooks/stripe": rule(
        EVERYONE, note="anyone may knock; only Stripe's signature gets past 400"
    ),
    # --- health -----------------------------------------------------------------------------
    f"GET {V1}/health/credit-line/terms": PUBLIC,
    f"GET {V1}/health/credit-line": rule(CITIZEN, note=NOT_JOINED, explicit={CITIZEN_B: 404}),
    f"POST {V1}/health/credit-line": CITIZENS_OWN,
    f"DELETE {V1}/health/credit-line": rule(CITIZEN, note=NOT_JOINED, explicit={CITIZEN_B: 404}),
    f"GET {V1}/health/face": CITIZENS_OWN,
    f"PUT {V1}/health/face": CITIZENS_OWN,
    f"DELETE {V1}/health/face": CITIZENS_OWN,
    f"GET {V1}/health/checkin-code": CITIZENS_OWN,
    f"GET {V1}/health/bills": CITIZENS_OWN,
    f"GET {V1}/health/bills/<bill_id>": rule(CITIZEN, HOSPITAL, not_found=(CITIZEN_B, HOSPITAL_B)),
    f"POST {V1}/health/bills/<bill_id>/refunds": A_HOSPITALS_OBJECT,
    f"POST {V1}/health/settlements": CITIZENS_OWN,
    f"GET {V1}/health/settlements/<settlement_id>": A_CITIZENS_OBJECT,
    f"GET {V1}/health/visits": rule(HOSPITALS),
    f"POST {V1}/health/visits": rule(HOSPITALS),
    f"GET {V1}/health/visits/<visit_id>": A_HOSPITALS_OBJECT,
    f"POST {V1}/health/visits/<visit_id>/charges": A_HOSPITALS_OBJECT,
    f"PATCH {V1}/health/visits/<visit_id>/charges/<charge_id>": A_HOSPITALS_OBJECT,
    f"POST {V1}/health/visits/<visit_id>/charges/<charge_id>/void": A_HOSPITALS_OBJECT,
    f"POST {V1}/health/visits/<visit_id>/close": A_HOSPITALS_OBJECT,
    f"GET {V1}/health/dashboard": rule(COMMISSION),
    "GET /fhir/R4/ChargeItem/<charge_id>": A_HOSPITALS_OBJECT,
    "GET /fhir/R4/Invoice/<bill_id>": A_HOSPITALS_OBJECT,
    "GET /dashboard/health": PUBLIC,
    "GET /dashboard/health/assets/<path:filename>": PUBLIC,
    # --- parking ----------------------------------------------------------------------------
    f"GET {V1}/parking/availability": PUBLIC,
    f"GET {V1}/parking/gateways": rule(OPERATORS),
    f"POST {V1}/parking/gateways": rule(OPERATORS),
    f"DELETE {V1}/parking/gateways/<gateway_id>": A_OPERATORS_OBJECT,
    f"GET {V1}/parking/lots": rule(OPERATORS),
    f"POST {V1}/parking/lots": rule(OPERATORS),
    f"GET {V1}/parking/lots/<lot_id>": A_OPERATORS_OBJECT,
    f"PATCH {V1}/parking/lots/<lot_id>": A_OPERATORS_OBJECT,
    f"GET {V1}/parking/lots/<lot_id>/reservations": A_OPERATORS_OBJECT,
    f"GET {V1}/parking/lots/<lot_id>/spaces": PUBLIC,
    f"POST {V1}/parking/lots/<lot_id>/spaces": A_OPERATORS_OBJECT,
    f"GET {V1}/parking/lots/<lot_id>/stats": A_OPERATORS_OBJECT,
    f"GET {V1}/parking/lots/<lot_id>/tariff": A_OPERATORS_OBJECT,
    f"PUT {V1}/parking/lots/<lot_id>/tariff": A_OPERATORS_OBJECT,
    f"PATCH {V1}/parking/spaces/<space_id>": A_OPERATORS_OBJECT,
    f"GET {V1}/parking/sensors": rule(OPERATORS),
    f"POST {V1}/parking/sensors": rule(OPERATORS),
    f"DELETE {V1}/parking/sensors/<sensor_id>": A_OPERATORS_OBJECT,
    f"POST {V1}/parking/sensor-events": A_GATEWAY,
    f"POST {V1}/parking/ttn/uplink": A_GATEWAY,
    f"GET {V1}/parking/reservations": CITIZENS_OWN,
    f"POST {V1}/parking/reservations": CITIZENS_OWN,
    f"GET {V1}/parking/reservations/<reservation_id>": A_CITIZENS_OBJECT,
    f"POST {V1}/parking/reservations/<reservation_id>/cancel": A_CITIZENS_OBJECT,
    f"POST {V1}/parking/reservations/<reservation_id>/pay": A_CITIZENS_OBJECT,
    "GET /ngsi-ld/v1/entities": PUBLIC,
    "GET /ngsi-ld/v1/entities/<entity_id>": PUBLIC,
    # --- operations and documentation -------------------------------------------------------
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /metrics": rule(EVERYONE, note="closed by METRICS_TOKEN / METRICS_ALLOWED_NETWORKS"),
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    "GET /docs/assets/<path:filename>": PUBLIC,
    "GET /static/<path:filename>": rule(
        note="Flask's static route; the app has no static folder",
        explicit={c: 404 for c in EVERYONE},
    ),
}


def route_key(method: str, rule_text: str) -> str:
    return f"{method} {rule_text}"
