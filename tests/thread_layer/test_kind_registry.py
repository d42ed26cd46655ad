"""A throw-away execution kind registered in one place (one ExecutionKind) runs in a worker
process and shows in the API, its OpenAPI document, the pages and the mails."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.factories import cancer_project
from thread_layer.kinds import ExecutionKind, KindOption, register, unregister
from thread_layer.kinds import all_kinds as registered

#: the kinds the platform registers itself, in their order
BUILT_IN = [kind.name for kind in registered()]

pytestmark = pytest.mark.slow


def run_echo(payload: dict, reporter) -> dict:
    """In the worker process: write the word into the project's storage and answer it."""
    from thread_layer.worker import project_files

    word = payload["options"]["word"]
    files = project_files(payload)
    reporter.log(f"Echoing {word}.", stage="echoing")
    reporter.progress("echoing", 50)
    files.upload_bytes("echo.txt", word.encode())
    return {"echoed": files.read_bytes("echo.txt").decode()}


ECHO = ExecutionKind(
    name="echo", label="Echo", run=run_echo, stages=("echoing",),
    options=(KindOption("word", {"type": "string"}, "echo: the word to echo",
                        parse=lambda raw, db: str(raw), keep_empty=False),),
    button="Echo", button_class="btn-outline-secondary",
    success_lines=lambda result: [f"Echoed {result.get('echoed')}."])


@pytest.fixture
def echo_kind():
    register(ECHO)
    yield ECHO
    unregister(ECHO.name)


def test_a_registered_kind_runs_and_shows_in_the_api_the_document_and_the_pages(
        echo_kind, api, admin_client):
    project = api.create_project(cancer_project())

    schemas = api.get("/openapi.json").get_json()["components"]["schemas"]
    assert schemas["ExecutionKind"]["enum"] == [*BUILT_IN, "echo"]
    assert schemas["ExecutionInput"]["properties"]["word"]["type"] == "string"
    assert schemas["Execution"]["properties"]["kind"] == {"$ref": "#/components/schemas/"
                                                                  "ExecutionKind"}

    page = admin_client.get(f"/projects/{project['slug']}").get_data(as_text=True)
    assert 'data-action="echo"' in page and ">Echo</button>" in page

    started = api.start(project["id"], "echo", word="hello")
    assert started.status_code == 202, started.get_json()
    done = api.wait_final(project["id"], started.get_json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"] == {"echoed": "hello"} and done["options"] == {"word": "hello"}
    logs = api.get(f"/projects/{project['id']}/executions/{done['id']}/logs").get_json()
    assert any(line["message"] == "Echoing hello." and line["stage"] == "echoing"
               for line in logs["items"])
    assert any(line["message"] == "Echo queued by Ada Admin." for line in logs["items"])

    def success_mail():
        return [m for m in api.get("/outbox").get_json()["items"]
                if m["subject"].endswith(f"echo {done['id']} succeeded")]
    mail = wait_until(success_mail, timeout=30, message="the success mail")[0]
    assert "Echoed hello." in mail["body_text"]

    # its button on the project page starts it too, with the form's options
    posted = admin_client.post(f"/projects/{project['slug']}/echo", data={"word": "again"},
                               headers={"X-CSRFToken": admin_client.csrf_token})
    assert posted.status_code == 303
    second = api.get(f"/projects/{project['id']}/executions").get_json()["items"][0]
    assert second["kind"] == "echo" and posted.location.endswith(second["id"])
    assert api.wait_final(project["id"], second["id"])["result"] == {"echoed": "again"}
    detail = admin_client.get(posted.location).get_data(as_text=True)
    assert f"echo {second['id']}</h1>" in detail


def test_an_unregistered_kind_is_refused_everywhere(api, admin_client):
    project = api.create_project(cancer_project())
    answer = api.start(project["id"], "echo")
    assert answer.status_code == 400
    quoted = [f'"{name}"' for name in BUILT_IN]
    assert answer.get_json()["error"]["message"] == \
        f'kind must be {", ".join(quoted[:-1])} or {quoted[-1]}.'
    posted = admin_client.post(f"/projects/{project['slug']}/echo",
                               headers={"X-CSRFToken": admin_client.csrf_token})
    assert posted.status_code in (404, 405)
    schemas = api.get("/openapi.json").get_json()["components"]["schemas"]
    assert schemas["ExecutionKind"]["enum"] == BUILT_IN
    assert BUILT_IN[:4] == ["train", "predict", "move", "feedback"]
