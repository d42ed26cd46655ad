"""The turnstile that small real-time predictions take in turn (thread_layer/model_server.py):
threads get through one at a time in the order they arrived, a holder can step out for a slow
wait and queue again, an error gives the turn up, and a thread cannot take it twice."""

from __future__ import annotations

import threading
import time

import pytest

from tests.waiting import wait_until
from thread_layer.model_server import TURN_BYTES, ModelServer, Turnstile


def queued(turnstile: Turnstile, count: int) -> None:
    """Wait until ``count`` threads wait for their turn."""
    wait_until(lambda: len(turnstile._waiting) >= count, timeout=10, interval=0.001,
               message=f"{count} threads to queue")


def test_threads_get_through_one_at_a_time_in_arrival_order():
    turnstile = Turnstile()
    order: list[int] = []
    inside = []

    def visit(index: int) -> None:
        with turnstile:
            inside.append(index)
            assert len(inside) == 1, "two threads held the turn together"
            order.append(index)
            time.sleep(0.002)  # the test itself: hold the turn long enough for an overlap to show
            inside.remove(index)

    threads = [threading.Thread(target=visit, args=(i,)) for i in range(12)]
    with turnstile:  # hold the turn while they queue up, one after the other
        for count, thread in enumerate(threads, start=1):
            thread.start()
            queued(turnstile, count)
    for thread in threads:
        thread.join(timeout=10)
    assert order == list(range(12))
    assert turnstile._holder is None and not turnstile._waiting


def test_a_holder_steps_out_for_a_slow_wait_and_queues_again():
    turnstile = Turnstile()
    events: list[str] = []
    loading = threading.Event()
    loaded = threading.Event()

    def slow_loader() -> None:
        with turnstile:
            events.append("loader in")
            with turnstile.stepped_out():
                loading.set()
                loaded.wait(timeout=10)  # e.g. a model loading from the storage
            assert turnstile.held()
            events.append("loader back")

    def quick() -> None:
        with turnstile:
            events.append("quick")

    loader = threading.Thread(target=slow_loader)
    loader.start()
    assert loading.wait(timeout=10)
    other = threading.Thread(target=quick)
    other.start()
    other.join(timeout=10)  # it got through while the loader waited outside
    assert events == ["loader in", "quick"]
    loaded.set()
    loader.join(timeout=10)
    assert events == ["loader in", "quick", "loader back"]
    with turnstile.stepped_out():  # a thread without the turn: nothing to give up
        assert not turnstile.held()


def test_an_error_gives_the_turn_up_and_taking_it_twice_is_refused():
    turnstile = Turnstile()
    with pytest.raises(ValueError), turnstile:
        raise ValueError("a bad record")
    with turnstile, pytest.raises(RuntimeError, match="already holds"):
        turnstile.__enter__()
    got_through = threading.Event()
    thread = threading.Thread(target=lambda: (turnstile.__enter__(), got_through.set(),
                                              turnstile.__exit__(None, None, None)))
    thread.start()
    assert got_through.wait(timeout=10)
    thread.join(timeout=10)


def test_only_small_requests_take_turns():
    server = ModelServer(db=None, resolver=None)
    assert server.turn(600) is server.turnstile
    assert server.turn(TURN_BYTES) is server.turnstile
    assert server.turn(TURN_BYTES + 1) is not server.turnstile  # batched instead
    assert server.turn(None) is not server.turnstile  # chunked: size unknown
