"""Login throttling (issue 21, item 4): a back-off per account instead of a lock, a budget per
address that does not lock out the people behind it, a trusted proxy's X-Forwarded-For, an
admin unlock, and every lock and unlock in the audit log.

This module runs behind one trusted proxy (``TRUSTED_PROXY_HOPS=1``): a request without
X-Forwarded-For keeps its own address, one with it counts as the forwarded client.
"""

from __future__ import annotations

import re
from datetime import timedelta

from entity.base import from_iso, to_iso, utcnow
from entity.login_throttle import LoginThrottle, ThrottlePolicy
from tests.conftest import ADMIN
from tests.security.conftest import PASSWORD, csrf_of, login_client, unique

APP_OVERRIDES = {"TRUSTED_PROXY_HOPS": 1}
WRONG = "not the password!"


def _address() -> str:
    n = int(unique(""))
    return f"10.30.{n // 250 % 250}.{n % 250}"


def _api_login(world, email, password, address=None, forwarded=None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return world.app.test_client().post(
        "/api/v1/session", json={"email": email, "password": password}, headers=headers,
        environ_base={"REMOTE_ADDR": address or _address()})


def _page_login(world, email, password, address):
    client = world.app.test_client()
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": csrf_of(client, "/login")},
                       environ_base={"REMOTE_ADDR": address})


def _let_time_pass(world, seconds: float) -> None:
    """Move every throttle record ``seconds`` into the past (instead of waiting)."""
    collection = world.db.login_failures.collection
    for doc in collection.find({}):
        earlier = from_iso(doc["time"]) - timedelta(seconds=seconds)
        collection.update_one({"_id": doc["_id"]}, {"time": to_iso(earlier)})


def _audited(world, action: str, target: str) -> list:
    events, _ = world.db.audit.search(action=action, limit=200)
    return [e for e in events if e.target == target]


def test_the_back_off_doubles_up_to_a_cap():
    policy = ThrottlePolicy()
    waits = [policy.delay(n) for n in range(1, 12)]
    assert waits[:4] == [timedelta(0)] * 4
    assert waits[4:8] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert waits[-1] == policy.max_delay == timedelta(minutes=15)
    assert policy.delay(10_000) == policy.max_delay


def test_failures_make_the_account_wait_longer_each_time_instead_of_locking_it(world):
    user = world.add_user("guessed")
    for _ in range(5):  # from five addresses: the account counts them all
        assert _api_login(world, user.email, WRONG).status_code == 401
    # the right password now waits 30 s, on the page and on the API: a wait, not a lock
    refused = _page_login(world, user.email, PASSWORD, _address())
    assert refused.status_code == 429
    assert re.search(r"try again in 30 seconds", refused.get_data(as_text=True))
    api = _api_login(world, user.email, PASSWORD)
    assert api.status_code == 429 and 25 <= int(api.headers["Retry-After"]) <= 30
    assert "try again in" in api.get_json()["error"]["message"]
    [lock] = _audited(world, "login.locked", user.email)
    assert lock.details["scope"] == "account" and 25 <= lock.details["seconds"] <= 30
    # attempts during the wait are not counted: they cannot make it longer
    for _ in range(3):
        assert _api_login(world, user.email, WRONG).status_code == 429
    _let_time_pass(world, 31)
    assert _api_login(world, user.email, WRONG).status_code == 401  # the sixth failure
    longer = _api_login(world, user.email, PASSWORD)
    assert longer.status_code == 429 and 30 < int(longer.headers["Retry-After"]) <= 60
    assert len(_audited(world, "login.locked", user.email)) == 2
    _let_time_pass(world, 61)
    assert _api_login(world, user.email, PASSWORD).status_code == 200
    # a success starts the count again
    assert _api_login(world, user.email, WRONG).status_code == 401
    assert _api_login(world, user.email, PASSWORD).status_code == 200


def test_an_attackers_failures_do_not_lock_the_owner_out_at_their_usual_address(world):
    admin = world.add_user("realadmin", role="admin")
    home = _address()
    assert _page_login(world, admin.email, PASSWORD, home).status_code == 302
    throttle = LoginThrottle(world.db.login_failures)
    for n in range(12):  # the attacker, from many addresses, as fast as the back-off allows
        throttle.failed(admin.email, f"198.51.100.{n}")
    assert _api_login(world, admin.email, PASSWORD, address="198.51.100.99").status_code == 429
    assert _page_login(world, admin.email, PASSWORD, home).status_code == 302
    # the owner's own mistakes at home still slow down guessing from there
    for _ in range(5):
        assert _api_login(world, admin.email, WRONG, address=home).status_code == 401
    assert _api_login(world, admin.email, PASSWORD, address=home).status_code == 429


def test_random_emails_from_one_address_slow_only_that_address_unknown_accounts(world):
    shared = _address()  # one NAT, or one proxy, in front of many people
    regular = world.add_user("regular")
    assert _api_login(world, regular.email, PASSWORD, address=shared).status_code == 200
    throttle = LoginThrottle(world.db.login_failures)
    for n in range(19):
        throttle.failed(f"random{n}-{unique('')}@example.com", shared)
    assert _api_login(world, "random-last@example.com", WRONG, address=shared).status_code == 401
    assert _audited(world, "login.locked", shared)[0].details["scope"] == "address"
    # the address's budget is spent: a new account from there waits ...
    newcomer = world.add_user("newcomer")
    response = _api_login(world, newcomer.email, PASSWORD, address=shared)
    assert response.status_code == 429 and "minutes" in response.get_json()["error"]["message"]
    # ... but whoever logs in from there as usual does, and the newcomer does from elsewhere
    assert _api_login(world, regular.email, PASSWORD, address=shared).status_code == 200
    assert _api_login(world, newcomer.email, PASSWORD).status_code == 200


def test_behind_the_trusted_proxy_each_forwarded_client_has_its_own_budget(world):
    proxy = _address()
    throttle = LoginThrottle(world.db.login_failures)
    for n in range(19):
        throttle.failed(f"stuffed{n}-{unique('')}@example.com", "203.0.113.7")
    assert _api_login(world, "stuffed@example.com", WRONG, address=proxy,
                      forwarded="203.0.113.7").status_code == 401
    events = _audited(world, "login.locked", "203.0.113.7")
    assert events and events[0].address == "203.0.113.7"
    user = world.add_user("behindproxy")
    assert _api_login(world, user.email, PASSWORD, address=proxy,
                      forwarded="203.0.113.7").status_code == 429
    # another client through the same proxy is not concerned
    assert _api_login(world, user.email, PASSWORD, address=proxy,
                      forwarded="203.0.113.8").status_code == 200


def test_an_admin_unlocks_an_account_on_the_users_page_and_through_the_api(world):
    admin = login_client(world.app, ADMIN["email"], ADMIN["password"])
    for how in ("page", "api"):
        user = world.add_user(f"unlock{how}")
        for _ in range(8):
            LoginThrottle(world.db.login_failures).failed(user.email, _address())
        assert _api_login(world, user.email, PASSWORD).status_code == 429
        page = admin.get("/admin/users").get_data(as_text=True)
        row = page[page.index(f'data-user="{user.email}"'):]
        row = row[:row.index("</tr>")]
        assert "login waits until" in row and "Unlock login" in row
        if how == "page":
            response = admin.post("/admin/users", data={
                "action": "unlock", "user_id": user.id, "csrf_token": admin.csrf_token})
            assert response.status_code == 303
        else:
            response = admin.post(f"/api/v1/users/{user.id}/unlock",
                                  headers={"X-CSRFToken": admin.csrf_token})
            assert response.status_code == 204
        assert _api_login(world, user.email, PASSWORD).status_code == 200
        [event] = _audited(world, "user.unlock", user.email)
        assert event.actor_email == ADMIN["email"] and event.details == {"had_failures": True}


def test_the_unlock_route_is_documented(world):
    document = world.app.test_client().get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/users/{user_id}/unlock"]["post"]
    assert "204" in operation["responses"]


def test_failed_logins_are_kept_apart_from_the_known_addresses_by_retention(world):
    """Pruning failures (the housekeeping job) keeps the known addresses of the accounts."""
    user = world.add_user("remembered")
    home = _address()
    assert _api_login(world, user.email, PASSWORD, address=home).status_code == 200
    world.db.login_failures.prune(utcnow() + timedelta(seconds=1))
    throttle = LoginThrottle(world.db.login_failures)
    for n in range(8):
        throttle.failed(user.email, f"192.0.2.{n}")
    assert _api_login(world, user.email, PASSWORD, address=home).status_code == 200
