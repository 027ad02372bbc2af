"""The ingest worker's paho client on the wire, without a broker: what it reads from a socket it
reads whole and in order, whatever the packets' sizes and wherever a read splits them, and the
acknowledgements of a batch go out as PUBACKs, in order, in one write."""

import socket
import struct

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from parking.mqtt import _Client


def _publish(topic: str, payload: bytes, mid: int, qos: int, flags: int = 0) -> bytes:
    body = struct.pack("!H", len(topic.encode())) + topic.encode()
    body += struct.pack("!H", mid) if qos else b""
    body += payload
    length, remaining = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        remaining.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x30 | qos << 1 | flags]) + bytes(remaining) + body


@pytest.fixture
def wire():
    """A client whose socket is one end of a socket pair; the test holds the other end."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    client = _Client(CallbackAPIVersion.VERSION2, client_id="wire", manual_ack=True)
    client._sock = ours
    seen: list[tuple[str, int, int, bytes, str]] = []
    client.on_received = lambda _c, topic, mid, qos, payload: seen.append(
        (topic, mid, qos, payload, "short")
    )
    client.on_message = lambda _c, _u, m: seen.append(
        (m.topic, m.mid, m.qos, bytes(m.payload), "paho")
    )
    yield client, theirs, seen
    client._sock = None
    ours.close()
    theirs.close()


def _read_all(client: _Client) -> None:
    for _ in range(1000):
        if client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("the client lost the connection")
        if not client.buffered():
            return


def test_publishes_are_read_whole_and_in_order_wherever_reads_split_them(wire):
    client, broker, seen = wire
    big = b"x" * 70_000  # a four-byte length, longer than one read
    messages = [
        ("city/parking/a/state", b'{"occupied": true}', 1, 1, 0),
        ("city/parking/b/state", b"", 2, 1, 0x08),  # DUP set, empty payload
        ("city/parking/c/state", b"qos0", 0, 0, 0x01),  # RETAIN set
        ("city/parking/d/state", big, 3, 1, 0),
        ("city/parking/e/state", b"last", 65535, 1, 0),
    ]
    stream = b"".join(_publish(t, p, mid, qos, flags) for t, p, mid, qos, flags in messages)
    # split the stream in odd places, reading after each piece
    for start in range(0, len(stream), 9_999):
        broker.sendall(stream[start : start + 9_999])
        _read_all(client)
    for _ in range(20):
        _read_all(client)
    assert [(t, mid, qos, p) for t, mid, qos, p, _ in seen] == [
        (t, mid, qos, p) for t, p, mid, qos, _ in messages
    ]
    # whole packets in the buffer take the short path; the one longer than a read goes
    # through paho
    assert [how for *_, how in seen] == ["short", "short", "short", "paho", "short"]


def test_other_packets_go_through_paho(wire):
    client, broker, seen = wire
    client._ping_t = 1.0  # a PINGREQ outstanding
    broker.sendall(b"\xd0\x00" + _publish("city/parking/a/state", b"{}", 7, 1))  # PINGRESP
    _read_all(client)
    assert client._ping_t == 0  # paho handled the PINGRESP
    assert [(t, mid, how) for t, mid, *_, how in seen] == [("city/parking/a/state", 7, "short")]


def test_a_batch_is_acknowledged_in_order_in_one_write(wire):
    client, broker, _ = wire
    client.ack_all([5, 1, 65535, 300])
    client.ack_all([])
    assert broker.recv(100) == b"".join(
        struct.pack("!BBH", 0x40, 2, mid) for mid in (5, 1, 65535, 300)
    )


def test_a_publish_whose_topic_length_overruns_the_packet_is_left_to_paho(wire):
    client, broker, seen = wire
    # remaining length 4: a topic length of 0x7FFF that the packet cannot hold, then a mid
    broker.sendall(b"\x32\x04\x7f\xff\x00\x01")
    assert client.loop_read() != mqtt.MQTT_ERR_SUCCESS  # paho's error code, not an IndexError
    assert seen == []
