"""The platform's services as the controllers see them (built once in ``create_app``)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from entity.database import Database
from integration.credentials import SecretBox
from integration.notifications import Notifier
from integration.storage_bridge import StorageResolver
from thread_layer.model_server import ModelServer
from thread_layer.runner import ExecutionRunner


@dataclass
class Services:
    db: Database
    resolver: StorageResolver
    notifier: Notifier
    runner: ExecutionRunner
    box: SecretBox
    model_server: ModelServer


def services() -> Services:
    """The services of the current app."""
    return current_app.extensions["trainyard"]
