"""Consumer quotas: flask-limiter counts each consumer key's calls per minute and per day.

The limits of a call are its subscription's (``services.catalog.Consumer.limits``), keyed by
the subscription id, so changing a quota takes effect on the next call. The counters live in
flask-limiter's storage: in memory by default (one web process), in Redis when
``RATELIMIT_STORAGE_URI`` is set, or else when the Socket.IO message queue or the Celery broker
is a Redis server, so that every web process shares them. A breach answers 429 in the
platform's error shape with ``Retry-After`` (seconds) and the ``X-RateLimit-*`` headers.

The limiter is one object per process (its route limits are declared where the views are), and
``init_app`` points its storage at the settings of the app created last: one app per process, as
gunicorn and the workers run it.
"""

from __future__ import annotations

import math
import time

from flask import Flask, g
from flask_limiter import Limiter, RateLimitExceeded

from exception_layer import TooManyRequests
from exception_layer.handlers import render_error


def _consumer():
    return getattr(g, "consumer", None)


def _key() -> str:
    consumer = _consumer()
    return f"consumer:{consumer.subscription.id}" if consumer else "none"


limiter = Limiter(key_func=_key, default_limits=[], headers_enabled=True,
                  strategy="moving-window")


def consumer_limits():
    """The decorator of each consumer route: its key's quotas, one count shared by every
    consumer route; calls without a checked consumer key (refused by the route itself) are
    not counted."""
    return limiter.shared_limit(_limits, scope="consumer", key_func=_key,
                                exempt_when=lambda: _consumer() is None)


def _limits() -> str:
    consumer = _consumer()
    # read even for exempt calls (those without a consumer), whose count is never taken
    return consumer.limits if consumer else "1/second"


def storage_uri(settings) -> str:
    """Where the counters live (see the module's note)."""
    if settings.get("RATELIMIT_STORAGE_URI"):
        return settings["RATELIMIT_STORAGE_URI"]
    for name in ("SOCKETIO_MESSAGE_QUEUE", "CELERY_BROKER_URL"):
        value = settings.get(name) or ""
        if value.startswith(("redis://", "rediss://")):
            return value
    return "memory://"


def init_quotas(app: Flask) -> None:
    """Bind the limiter (after the bearer check, which finds the consumer, has been
    installed: its check runs after it)."""
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri(app.config)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)

    @app.errorhandler(RateLimitExceeded)
    def quota_exceeded(error: RateLimitExceeded):
        current = limiter.current_limit  # the breached limit, with its window's reset
        wait = max(1, math.ceil(current.reset_at - time.time())) if current else 60
        return render_error(TooManyRequests(
            f"The quota of this consumer key is used up ({error.limit.limit}); try again in "
            f"{wait} s.", details={"retry_after": wait, "limit": str(error.limit.limit)}))
