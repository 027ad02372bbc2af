"""The Things Stack v3 uplinks, decoded into sensor events (an adapter: knows no database).

An uplink (webhook body, or MQTT message on ``v3/{app}@{tenant}/devices/{device}/up``)::

    {"end_device_ids": {"device_id": "pk-0001", ...},
     "received_at": "2026-11-23T09:00:00.2Z",
     "uplink_message": {"f_port": 1, "frm_payload": "gA==",
                        "received_at": "2026-11-23T09:00:00.1Z"}}

Port 1 is a state change: bit 7 of the first byte is 1 when the space is occupied (as Nwave and
Bosch parking sensors send). Port 2 is a heartbeat. The observation time is the network
server's ``uplink_message.received_at``, the same whichever way the uplink reaches us, so an
uplink delivered both by webhook and by MQTT is a duplicate.
"""

import base64
import binascii
from datetime import datetime
from typing import Any

from parking.events import Event, as_utc

STATE_PORT = 1
HEARTBEAT_PORT = 2
OCCUPIED_BIT = 0x80


class NotAnUplink(ValueError):
    """The message is not an uplink we understand (it is counted as rejected)."""


def decode_uplink(body: Any, received_at: datetime) -> Event:
    """The event an uplink carries; ``NotAnUplink`` when it carries none."""
    try:
        device_id = str(body["end_device_ids"]["device_id"])
        uplink = body["uplink_message"]
        port = uplink.get("f_port")
        stamp = uplink.get("received_at") or body.get("received_at")
        observed_at = as_utc(datetime.fromisoformat(stamp)) if stamp else received_at
        payload = base64.b64decode(uplink.get("frm_payload") or "", validate=True)
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error) as error:
        raise NotAnUplink(str(error)) from None
    if port == HEARTBEAT_PORT:
        return Event(device_id, None, observed_at, received_at)
    if port != STATE_PORT or not payload:
        raise NotAnUplink(f"f_port {port!r} with {len(payload)} bytes")
    return Event(device_id, bool(payload[0] & OCCUPIED_BIT), observed_at, received_at)


def encode_uplink(
    device_id: str, occupied: bool | None, at: datetime, application: str = "parking"
) -> dict[str, Any]:
    """An uplink as The Things Stack sends it (for the simulator and tests)."""
    port, payload = (
        (HEARTBEAT_PORT, b"\x01")
        if occupied is None
        else (STATE_PORT, bytes([OCCUPIED_BIT if occupied else 0]))
    )
    stamp = at.isoformat().replace("+00:00", "Z")
    return {
        "end_device_ids": {
            "device_id": device_id,
            "application_ids": {"application_id": application},
        },
        "received_at": stamp,
        "uplink_message": {
            "f_port": port,
            "frm_payload": base64.b64encode(payload).decode(),
            "received_at": stamp,
        },
    }
