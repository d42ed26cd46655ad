"""The database: every repository over one document store."""

from __future__ import annotations

from entity.catalog import ConsumerCallRepository, ListingRepository, SubscriptionRepository
from entity.execution import ExecutionRepository
from entity.execution_limits import ExecutionLimitsRepository
from entity.job_schedule import JobScheduleRepository
from entity.log_record import LogRepository
from entity.mail_message import MailRepository
from entity.migrations import upgrade
from entity.model_version import ModelVersionRepository
from entity.monitoring import AlertRuleRepository, IncidentRepository, MonitorPointRepository
from entity.prediction_record import PredictionRecordRepository
from entity.prediction_usage import PredictionUsageRepository
from entity.project import ProjectRepository
from entity.retraining_schedule import RetrainingScheduleRepository
from entity.security import (
    ApiTokenRepository,
    AuditRepository,
    LoginFailureRepository,
    OneTimeTokenRepository,
    SessionRepository,
    SettingsRepository,
)
from entity.storage_connection import StorageConnectionRepository
from entity.store import DocumentStore, open_store
from entity.team import TeamRepository
from entity.user import UserRepository
from entity.webhook import DeliveryRepository, WebhookRepository


class Database:
    """All repositories, sharing one store. Nothing connects until first used."""

    def __init__(self, store: DocumentStore):
        self.store = store
        self.teams = TeamRepository(store.collection("teams"), store.collection("team_members"))
        self.users = UserRepository(store.collection("users"), teams=self.teams)
        self.projects = ProjectRepository(store.collection("projects"))
        self.executions = ExecutionRepository(store.collection("executions"))
        self.logs = LogRepository(store.collection("log_records"))
        self.model_versions = ModelVersionRepository(store.collection("model_versions"))
        self.mail = MailRepository(store.collection("mail_messages"))
        self.api_tokens = ApiTokenRepository(store.collection("api_tokens"))
        self.one_time_tokens = OneTimeTokenRepository(store.collection("one_time_tokens"))
        self.audit = AuditRepository(store.collection("audit_events"))
        self.login_failures = LoginFailureRepository(store.collection("login_failures"))
        self.settings = SettingsRepository(store.collection("settings"))
        self.sessions = SessionRepository(store.collection("login_sessions"))
        self.storage_connections = StorageConnectionRepository(
            store.collection("storage_connections"))
        self.prediction_usage = PredictionUsageRepository(store.collection("prediction_usage"))
        self.job_schedule = JobScheduleRepository(store.collection("job_schedule"))
        self.prediction_records = PredictionRecordRepository(
            store.collection("prediction_records"))
        # live monitoring and alerts
        self.monitor_points = MonitorPointRepository(store.collection("monitor_points"))
        self.alert_rules = AlertRuleRepository(store.collection("alert_rules"))
        self.incidents = IncidentRepository(store.collection("incidents"))
        self.webhooks = WebhookRepository(store.collection("webhooks"))
        self.webhook_deliveries = DeliveryRepository(store.collection("webhook_deliveries"))
        # retraining schedules (thread_layer/scheduler.py)
        self.retraining_schedules = RetrainingScheduleRepository(
            store.collection("retraining_schedules"))
        # the model catalog
        self.listings = ListingRepository(store.collection("catalog_listings"))
        self.subscriptions = SubscriptionRepository(store.collection("catalog_subscriptions"))
        self.consumer_calls = ConsumerCallRepository(store.collection("consumer_calls"))
        self.execution_limits = ExecutionLimitsRepository(store.collection("execution_limits"))

    @classmethod
    def from_url(cls, url: str) -> Database:
        return cls(open_store(url))

    def repositories(self) -> list:
        return [self.users, self.projects, self.executions, self.logs, self.model_versions,
                self.mail, self.api_tokens, self.one_time_tokens, self.audit,
                self.login_failures, self.settings, self.storage_connections, self.sessions,
                self.prediction_usage, self.job_schedule, self.prediction_records,
                self.teams, self.execution_limits, *self.monitoring_repositories(),
                self.retraining_schedules, self.listings, self.subscriptions,
                self.consumer_calls]

    def monitoring_repositories(self) -> list:
        return [self.monitor_points, self.alert_rules, self.incidents, self.webhooks,
                self.webhook_deliveries]

    def upgrade(self) -> int:
        """Run the schema migrations this database lacks; returns its schema version.

        Raises:
            entity.migrations.SchemaVersionError: the database is newer than this code.
        """
        return upgrade(self.store)

    def ensure_indexes(self) -> None:
        for repo in self.repositories():
            repo.ensure_indexes()

    def close(self) -> None:
        self.store.close()
