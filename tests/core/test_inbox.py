"""The inbox: unread first, paged, mark as read; nobody reads another's messages."""

import json
from datetime import timedelta

import time_machine

from core import db
from core.clock import utcnow
from core.inbox import service as inbox

INBOX = "/api/v1/me/notifications"


def _send(app, user_id, title, minutes_ago=0):
    with (
        app.app_context(),
        time_machine.travel(utcnow() - timedelta(minutes=minutes_ago), tick=False),
    ):
        notification = inbox.notify(user_id, "test", title, f"{title} body", data={"ref": title})
        db.session.commit()
        return notification.id


def test_unread_messages_come_first_then_newest(app, citizen):
    old = _send(app, citizen.user.id, "old", minutes_ago=30)
    _send(app, citizen.user.id, "middle", minutes_ago=20)
    _send(app, citizen.user.id, "new", minutes_ago=10)
    citizen.api.post(f"{INBOX}/{old}/read")
    # mark "new" read too: unread "middle" must now lead
    new = next(n["id"] for n in citizen.api.get(INBOX) if n["title"] == "new")
    citizen.api.post(f"{INBOX}/{new}/read")

    listed = citizen.api.get(INBOX)
    assert [(n["title"], n["read"]) for n in listed] == [
        ("middle", False),
        ("new", True),
        ("old", True),
    ]
    assert [n["title"] for n in citizen.api.get(f"{INBOX}?unread=true")] == ["middle"]


def test_the_inbox_is_paged(app, citizen):
    for i in range(5):
        _send(app, citizen.user.id, f"m{i}", minutes_ago=i)
    response = citizen.api.request("GET", f"{INBOX}?page=2&page_size=2", 200)
    assert [n["title"] for n in response.get_json()] == ["m2", "m3"]
    assert json.loads(response.headers["X-Pagination"])["total_pages"] == 3


def test_mark_all_read_counts_what_it_marked(app, citizen):
    _send(app, citizen.user.id, "a")
    _send(app, citizen.user.id, "b")
    assert citizen.api.post(f"{INBOX}/read-all") == {"marked": 2}
    assert citizen.api.post(f"{INBOX}/read-all") == {"marked": 0}


def test_another_users_message_is_404(app, citizen, make_account):
    other = make_account("citizen")
    theirs = _send(app, other.user.id, "private")
    citizen.api.post(f"{INBOX}/{theirs}/read", expected=404)
    assert citizen.api.get(INBOX) == []


def test_an_organisation_has_no_inbox(client, make_organisation):
    _, key = make_organisation("hospital")
    client.as_api_key(key).get(INBOX, expected=403)
