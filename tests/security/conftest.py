"""A module-wide app with one user per persona (anonymous, viewer, editor, owner, admin, an
outsider, a teammate who reaches every target project as an editor through a team only, and a
non-member who is in another team, one without a role on the targets), each logged in through
the real login page, and a builder of fresh target projects (files, executions, model versions
and log lines written directly, no training needed)."""

from __future__ import annotations

import functools
import io
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from app import create_app
from entity.execution import Execution
from entity.log_record import LogRecord
from entity.model_version import ModelVersion
from entity.project import BatchSchema, Project
from entity.security import ApiToken
from entity.user import User
from project_library.model_artifacts import save_model_version
from tests.conftest import ADMIN, LiveServer

PASSWORD = "matrix password 2026"
PERSONAS = ("anonymous", "viewer", "editor", "owner", "admin", "outsider", "teammate",
            "non_member")
MEMBER_ROLES = {"viewer": "viewer", "editor": "editor", "owner": "owner"}
#: the role the teammate's team holds on every target project (the teammate has none of their
#: own); the non-member's team holds none
TEAM_ROLE = "editor"
SCHEMA = {"filename_pattern": r"^data_\d{8}_\d{6}\.csv$",
          "columns": [{"name": "a", "type": "integer"}, {"name": "b", "type": "integer"},
                      {"name": "y", "type": "category"}],
          "target": "y", "ignored": []}
BATCH_FILE = "training_batch_files/data_20260101_000000.csv"
DOC_FILE = "docs/readme.txt"
_CSRF_META = re.compile(r'name="csrf-token" content="([^"]+)"')
_counter = itertools.count(1)


@functools.cache
def password_hash(password: str) -> str:
    """Hashing is slow on purpose; users sharing a password share one hash here."""
    return generate_password_hash(password)


def unique(prefix: str) -> str:
    """A name no other call of this test session gets."""
    return f"{prefix}{next(_counter)}"


def csrf_of(client, path: str = "/") -> str:
    html = client.get(path).get_data(as_text=True)
    match = _CSRF_META.search(html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login_client(app, email: str, password: str = PASSWORD):
    """A test client logged in through POST /login; ``client.csrf_token`` is set."""
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": csrf_of(client, "/login")})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    client.csrf_token = csrf_of(client, "/")
    return client


def anonymous_client(app):
    """A client that never logged in, with a CSRF token of its anonymous session (so that
    refusals of its posts are about the login, not about CSRF)."""
    client = app.test_client()
    client.csrf_token = csrf_of(client, "/login")
    return client


def storage_listing(app) -> list[tuple[str, int]]:
    """Every file and folder under the storage folder, with file sizes."""
    root = Path(app.config["DATA_DIR"]) / "storage"
    return sorted((str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1)
                  for p in root.rglob("*"))


@dataclass
class Persona:
    name: str
    user: User | None
    client: object
    write_token: str | None = None
    read_token: str | None = None


@dataclass
class Target:
    """One fresh project and the ids a route needs."""

    project: Project
    train_id: str
    predict_id: str
    queued_id: str | None
    output_path: str
    extra: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.project.id

    @property
    def slug(self) -> str:
        return self.project.slug


class World:
    """The app of a test module and its personas."""

    def __init__(self, app):
        self.app = app
        self.services = app.extensions["trainyard"]
        self.db = self.services.db
        self.personas: dict[str, Persona] = {}

    # -- users ---------------------------------------------------------------------------

    def add_user(self, prefix: str = "user", *, role: str = "member", password: str | None =
                 PASSWORD, name: str | None = None) -> User:
        email = f"{unique(prefix)}@example.com"
        return self.db.users.add(User(email=email, name=name or email.split("@")[0], role=role,
                                      password_hash=password_hash(password) if password
                                      else "!"))

    def issue_token(self, user: User, scope: str = "write") -> tuple[ApiToken, str]:
        token, clear = ApiToken.issue(user.id, unique("token "), scope)
        self.db.api_tokens.add(token)
        return token, clear

    def user(self, persona: str) -> User:
        return self.personas[persona].user

    # -- projects ------------------------------------------------------------------------

    def new_project(self, *, owner: User, members: dict[str, str] | None = None,
                    active: bool = False, name: str | None = None,
                    teams: dict[str, str] | None = None) -> Target:
        """A project with a batch file, a document, a succeeded training (v2 active, v1 to
        promote, roll back to or delete), a succeeded prediction with its output and log
        lines; ``active`` adds a queued execution that holds the project."""
        db = self.db
        name = name or unique("Target ")
        project = Project(name=name, slug=re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
                          problem_type="classification", owner_id=owner.id,
                          schema=BatchSchema.from_dict(SCHEMA), members=dict(members or {}),
                          teams=dict(teams or {}), description="original description")
        db.projects.add(project)
        files = self.services.resolver.files(project)
        files.ensure_layout()
        files.upload_bytes(BATCH_FILE, b"a,b,y\n1,2,x\n3,4,z\n")
        files.upload_bytes(DOC_FILE, b"hello")
        train = db.executions.add(Execution(project_id=project.id, kind="train",
                                            started_by=owner.id, status="succeeded",
                                            stage="done", progress=100, result={"version": 1}))
        output = "prediction_output/run1/predictions.csv"
        files.upload_bytes(output, b"a,b,prediction\n1,2,x\n")
        predict = db.executions.add(Execution(
            project_id=project.id, kind="predict", started_by=owner.id, status="succeeded",
            stage="done", progress=100, options={"version": 1},
            result={"output_path": output, "rows": 1}))
        for seq, message in enumerate(("Prediction queued.", "Predicting.", "Done."), 1):
            db.logs.add(LogRecord(execution_id=predict.id, project_id=project.id, seq=seq,
                                  level="INFO", stage="predicting", message=message))
        # v1 has its files (so that promoting it or rolling back to it passes the checks);
        # v2, the active one, has none (a prediction is refused when it loads the model)
        artifacts = save_model_version(files, 1, model={"stand-in": "model"},
                                       documents={"metrics.json": {"accuracy": 0.9}})
        for number in (1, 2):
            db.model_versions.add(ModelVersion(
                project_id=project.id, version=number, execution_id=train.id,
                algorithm="logistic_regression", metrics={"accuracy": 0.9},
                problem_type="classification", schema=SCHEMA,
                artifacts=artifacts if number == 1 else {}))
        db.projects.set_versions(project.id, next_version=3, active_version=2)
        queued_id = None
        if active:
            queued = db.executions.add(Execution(project_id=project.id, kind="train",
                                                 started_by=owner.id,
                                                 runner=dict(self.services.runner.identity)))
            assert db.projects.claim(project.id, queued.id)
            queued_id = queued.id
        return Target(project=db.projects.get(project.id), train_id=train.id,
                      predict_id=predict.id, queued_id=queued_id, output_path=output)

    def target(self, *, active: bool = False) -> Target:
        """A fresh project where viewer, editor and owner are members with those roles, and
        the teammate's team holds :data:`TEAM_ROLE`."""
        members = {self.user(p).id: role for p, role in MEMBER_ROLES.items()}
        members[self.personas["bystander"].user.id] = "viewer"
        return self.new_project(owner=self.personas["creator"].user, members=members,
                                active=active, teams={self.team.id: TEAM_ROLE})

    # -- teams ---------------------------------------------------------------------------

    def new_team(self, *, lead: User | None = None, members: tuple[User, ...] = ()):
        """A fresh team (made directly, no route involved)."""
        from entity.team import Team, TeamMembership, team_slug

        name = unique("Team ")
        team = self.db.teams.add(Team(name=name, slug=team_slug(name)))
        if lead is not None:
            self.db.teams.put_member(TeamMembership(team.id, lead.id, "lead"))
        for user in members:
            self.db.teams.put_member(TeamMembership(team.id, user.id, "member"))
        return team

    # -- state -------------------------------------------------------------------------------

    def project(self, target: Target) -> Project | None:
        return self.db.projects.get(target.id)

    def exists(self, target: Target, path: str) -> bool:
        return self.services.resolver.files(target.project).exists(path)


def build_world(app) -> World:
    """Admin through the set-up page, the others as users logging in through /login; each
    logged-in persona gets a write and a read API token made through POST /api/v1/tokens."""
    world = World(app)
    client = app.test_client()
    response = client.post("/setup", data={**ADMIN, "confirm": ADMIN["password"],
                                           "csrf_token": csrf_of(client, "/setup")})
    assert response.status_code == 302
    client.csrf_token = csrf_of(client, "/")
    admin = world.db.users.get_by_email(ADMIN["email"])
    world.personas["admin"] = Persona("admin", admin, client)
    world.personas["anonymous"] = Persona("anonymous", None, anonymous_client(app))
    for name in ("viewer", "editor", "owner", "outsider", "teammate", "non_member"):
        user = world.add_user(name)
        world.personas[name] = Persona(name, user, login_client(app, user.email))
    # not personas: the creator of the target projects, and a member that routes act upon
    for name in ("creator", "bystander"):
        world.personas[name] = Persona(name, world.add_user(name, password=None), None)
    for persona in world.personas.values():
        if persona.client is None or persona.user is None:
            continue
        for scope in ("write", "read"):
            response = persona.client.post("/api/v1/tokens", json={"name": f"{scope} token",
                                                                   "scope": scope},
                                           headers={"X-CSRFToken": persona.client.csrf_token})
            assert response.status_code == 201, response.get_json()
            setattr(persona, f"{scope}_token", response.get_json()["token"])
    # the teammate's team holds a role on every target; the non-member's team on none
    world.team = world.new_team(members=(world.user("teammate"),))
    world.other_team = world.new_team(members=(world.user("non_member"),))
    # the outsider has a project of their own, where the others have no role
    world.outsider_project = world.new_project(owner=world.user("outsider"))
    return world


@pytest.fixture(scope="module")
def world(tmp_path_factory, request):
    """The module's app and personas; a module sets ``APP_OVERRIDES`` to change settings.

    Executions are queued but never run: the runner's threads are not started.
    """
    tmp = tmp_path_factory.mktemp("security")
    config = {"TESTING": True, "DATA_DIR": str(tmp / "data"),
              "INSTANCE_DIR": str(tmp / "instance"), "HEARTBEAT_SECONDS": 1,
              "STALE_AFTER_SECONDS": 30, "PUBLIC_URL": "http://trainyard.test",
              "LOG_LEVEL": "WARNING", **getattr(request.module, "APP_OVERRIDES", {})}
    app = create_app(config, start_runner=False)
    runner = app.extensions["trainyard"].runner
    runner.start = lambda: None  # submit() queues; nothing takes executions off the queue
    yield build_world(app)
    runner.shutdown()
    app.extensions["trainyard"].db.close()


@pytest.fixture(scope="module")
def live(world):
    """The module's app behind a real threaded HTTP server (for Socket.IO)."""
    server = LiveServer(world.app).start()
    yield server
    server.stop()


def sample_csv() -> dict:
    return {"sample": (io.BytesIO(b"a,b,y\n1,2,x\n3,4,z\n"), "sample.csv")}
