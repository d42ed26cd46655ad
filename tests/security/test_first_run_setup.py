"""The first-run set-up creates exactly one administrator, even when several arrive at once, and
a refused attempt (a weak password) does not use the set-up up."""

from __future__ import annotations

import threading

import requests

from tests.conftest import ADMIN


def test_simultaneous_set_ups_create_exactly_one_admin(live_server, app):
    url = f"{live_server.url}/api/v1/setup"
    weak = requests.post(url, json={**ADMIN, "password": "short"}, timeout=30)
    assert weak.status_code == 422  # refused before the one-time claim

    start = threading.Barrier(6)
    statuses: list[int] = []

    def attempt(index: int) -> None:
        body = {**ADMIN, "email": f"admin{index}@example.com", "name": f"Admin {index}"}
        start.wait()
        statuses.append(requests.post(url, json=body, timeout=60).status_code)

    workers = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert sorted(statuses) == [201] + [409] * 5
    users = app.extensions["trainyard"].db.users.list()
    assert len(users) == 1 and users[0].role == "admin"
