"""Health check for load balancers and the benchmarks."""

from __future__ import annotations

from flask import Blueprint, jsonify

from controllers.services import context
from services.administration import check_database

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answers 200 when the database answers."""
    check_database(context())
    return jsonify({"status": "ok"})
