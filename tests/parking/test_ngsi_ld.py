"""NGSI-LD: ParkingSpot and OffStreetParking entities, key-values validated against the FIWARE
Smart Data Models schemas (copied under standards/ with their provenance; no network)."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.parking.conftest import P

STANDARDS = Path(__file__).parent / "standards" / "fiware-parking"
COMMON_URL = "https://smart-data-models.github.io/data-models/common-schema.json"
E = "/ngsi-ld/v1/entities"


def _validator(entity: str) -> Draft202012Validator:
    common = json.loads((STANDARDS / "common-schema.json").read_text())
    registry: Registry = Registry().with_resource(COMMON_URL, Resource.from_contents(common))
    schema = json.loads((STANDARDS / f"{entity}.schema.json").read_text())
    return Draft202012Validator(schema, registry=registry)


def _get(client, url, expected=200):
    response = client.request("GET", url, expected)
    assert response.headers["Content-Type"].startswith("application/ld+json")
    return response


def test_the_validators_accept_the_standards_own_examples_and_refuse_a_broken_entity():
    spot = json.loads((STANDARDS / "ParkingSpot.example.jsonld").read_text())
    _validator("ParkingSpot").validate(spot)
    _validator("OffStreetParking").validate(
        json.loads((STANDARDS / "OffStreetParking.example.jsonld").read_text())
    )
    assert not _validator("ParkingSpot").is_valid(spot | {"status": "parked"})


def test_parking_spots_in_key_values_validate_against_the_fiware_schema(client, lot, report):
    report(lot, {0: True, 1: False})
    response = _get(client, f"{E}?type=ParkingSpot&options=keyValues")
    spots = response.get_json()
    assert len(spots) == 3
    validator = _validator("ParkingSpot")
    for spot in spots:
        validator.validate(spot)
        assert spot["id"].startswith("urn:ngsi-ld:ParkingSpot:")
        assert spot["refParkingSite"] == f"urn:ngsi-ld:OffStreetParking:{lot.id}"
        assert "@context" in spot
    by_id = {spot["id"]: spot["status"] for spot in spots}
    assert by_id[f"urn:ngsi-ld:ParkingSpot:{lot.space(0)}"] == "occupied"
    assert by_id[f"urn:ngsi-ld:ParkingSpot:{lot.space(1)}"] == "free"
    assert by_id[f"urn:ngsi-ld:ParkingSpot:{lot.space(2)}"] == "unknown"


def test_a_closed_space_is_closed(client, lot):
    lot.operator.api.request("PATCH", f"{P}/spaces/{lot.space(2)}", 200, json={"closed": True})
    spot = _get(client, f"{E}/urn:ngsi-ld:ParkingSpot:{lot.space(2)}?options=keyValues").get_json()
    assert spot["status"] == "closed"
    _validator("ParkingSpot").validate(spot)


def test_off_street_parking_carries_available_and_total_spot_numbers(client, lot, report):
    report(lot, {0: True, 1: False, 2: False})
    site = _get(client, f"{E}/urn:ngsi-ld:OffStreetParking:{lot.id}?options=keyValues").get_json()
    _validator("OffStreetParking").validate(site)
    assert (site["totalSpotNumber"], site["availableSpotNumber"]) == (3, 2)
    normalized = _get(client, f"{E}/urn:ngsi-ld:OffStreetParking:{lot.id}").get_json()
    assert normalized["availableSpotNumber"]["type"] == "Property"
    assert normalized["availableSpotNumber"]["value"] == 2
    assert normalized["location"]["type"] == "GeoProperty"


def test_the_normalized_form_wraps_attributes_as_properties_and_relationships(client, lot, report):
    report(lot, {0: True})
    spot = _get(client, f"{E}/urn:ngsi-ld:ParkingSpot:{lot.space(0)}").get_json()
    assert spot["status"]["type"] == "Property" and spot["status"]["value"] == "occupied"
    assert spot["status"]["observedAt"].endswith("Z")
    assert spot["refParkingSite"] == {
        "type": "Relationship",
        "object": f"urn:ngsi-ld:OffStreetParking:{lot.id}",
    }
    assert spot["location"]["type"] == "GeoProperty"


def test_q_status_free_limit_offset_and_count(client, lot, make_lot, report):
    report(lot, {0: False, 1: False, 2: True})
    response = _get(client, f'{E}?type=ParkingSpot&q=status=="free"&count=true&limit=1')
    assert response.headers["NGSILD-Results-Count"] == "2"
    first = response.get_json()
    second = _get(client, f'{E}?type=ParkingSpot&q=status=="free"&limit=1&offset=1').get_json()
    assert len(first) == len(second) == 1 and first[0]["id"] != second[0]["id"]
    assert {first[0]["id"], second[0]["id"]} == {
        f"urn:ngsi-ld:ParkingSpot:{lot.space(0)}",
        f"urn:ngsi-ld:ParkingSpot:{lot.space(1)}",
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{E}", 400),
        (f"{E}?type=ParkingSpot&q=name==1", 400),
        (f"{E}/urn:ngsi-ld:ParkingSpot:nope", 404),
        (f"{E}/not-a-urn", 404),
    ],
)
def test_bad_queries_and_unknown_entities(client, url, expected):
    client.request("GET", url, expected)


def test_an_unknown_type_is_an_empty_list(client, lot):
    assert _get(client, f"{E}?type=Vehicle").get_json() == []
