"""The Python client and the ``trainyard`` command line against the real app on a real threaded
server: log in with a personal API token, create a project from a definition file, upload a
folder of batch files, train following the log live, predict a CSV in real time, run a batch
prediction and download its output, and the plain error of a training without files."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ADMIN, wait_until
from tests.factories import batch_files, cancer_frame, cancer_project, csv_bytes
from trainyard_client import ApiError, Client, ConnectionFailed
from trainyard_client.cli import main

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
TRAINYARD = Path(sys.executable).with_name("trainyard")
NO_FILES = "no training batch files found in training_batch_files/"


def make_token(url: str) -> str:
    """The first admin (POST /api/v1/setup) and a read-write personal token for them."""
    http = requests.Session()
    answer = http.post(f"{url}/api/v1/setup", json=ADMIN, timeout=30)
    assert answer.status_code == 201, answer.text
    created = http.post(f"{url}/api/v1/tokens", json={"name": "cli", "scope": "write"},
                        headers={"X-CSRFToken": answer.json()["csrf_token"]}, timeout=30)
    assert created.status_code == 201, created.text
    return created.json()["token"]


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run the CLI in-process with its config under tmp_path; answers (code, stdout, stderr)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("TRAINYARD_URL", raising=False)
    monkeypatch.delenv("TRAINYARD_TOKEN", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


class OddModel:
    """A class of the uploader's own, which skops does not trust."""

    def predict(self, rows):
        return rows


def write_batches(folder: Path, frame, prefix: str, parts: int) -> Path:
    folder.mkdir(parents=True)
    for name, data in batch_files(frame, prefix, parts):
        (folder / name).write_bytes(data)
    return folder


def test_client_and_cli_drive_the_whole_loop(live_server, cli, tmp_path):
    token = make_token(live_server.url)

    # login: url and token saved, readable by the owner only
    code, out, _ = cli("login", "--url", live_server.url, "--token", token)
    assert code == 0 and ADMIN["email"] in out
    config = tmp_path / "config" / "trainyard" / "config.json"
    assert json.loads(config.read_text()) == {"url": live_server.url, "token": token}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    # create a project from a definition file
    definition = tmp_path / "definition.json"
    definition.write_text(json.dumps(cancer_project("CLI screening")))
    code, out, err = cli("create-project", definition)
    assert code == 0, err
    client = Client(live_server.url, token)
    project = client.projects.resolve("cli-screening")
    assert out.strip() == f"Created project cli-screening ({project['id']})"
    code, out, _ = cli("projects")
    assert code == 0 and "cli-screening" in out and project["id"] in out

    # upload a folder of training batch files (by slug, default folder)
    frame = cancer_frame()
    train_part, predict_part = frame.iloc[:450], frame.iloc[450:]
    batches = write_batches(tmp_path / "batches", train_part, "cancer", 3)
    code, out, err = cli("upload", "cli-screening", batches)
    assert code == 0, err
    assert "Uploaded 3 files to cli-screening/training_batch_files/" in out
    listed = client.files.list(project, "training_batch_files/")
    assert sorted(f["name"] for f in listed["files"]) == sorted(p.name for p in
                                                                batches.iterdir())

    # a refused upload: each reason on its own line, under its file (issue 21 item 14)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    (wrong / "cancer_20260101_000000.csv").write_text("region,size\nnorth,1\n")
    code, _, err = cli("upload", "cli-screening", wrong)
    assert code == 1
    lines = err.splitlines()
    assert "  cancer_20260101_000000.csv:" in lines
    reasons = [line for line in lines if line.startswith("    - ")]
    assert len(reasons) >= 2 and any("region" in r for r in reasons), err
    # uploading the same files again replaces them only when asked
    code, _, err = cli("upload", "cli-screening", batches)
    assert code == 1 and "already exist" in err and "overwrite" in err, err
    code, out, err = cli("upload", "cli-screening", batches, "--overwrite")
    assert code == 0, err

    # train, following the log live: every line printed, in order; exit code 0
    code, out, err = cli("train", "cli-screening", "--follow")
    assert code == 0, err
    assert "Training succeeded: model v1" in err
    training = client.executions.list(project)[0]
    assert training["kind"] == "train" and training["status"] == "succeeded"
    stored = list(client.executions.iter_logs(project, training))
    assert [line["seq"] for line in stored] == list(range(1, len(stored) + 1))
    printed = out.splitlines()
    assert len(printed) == len(stored) >= 5
    for text, line in zip(printed, stored, strict=True):
        assert text.endswith(line["message"]) and line["stage"] in text

    # the same log through each transport of follow(), and the logs command
    for transport in ("socketio", "sse", "poll"):
        lines, states = [], []
        final = client.executions.follow(training, lines.append, states.append,
                                         transport=transport, timeout=60)
        assert final["status"] == "succeeded" and states[-1]["status"] == "succeeded"
        assert [line["seq"] for line in lines] == [line["seq"] for line in stored], transport
    tail = client.executions.follow(training, (tail_lines := []).append, after_seq=3,
                                    transport="sse")
    assert tail["id"] == training["id"] and tail_lines[0]["seq"] == 4
    code, out, _ = cli("logs", "cli-screening", "latest")
    assert code == 0 and len(out.splitlines()) == len(stored)

    # predict a CSV in real time: one prediction per row, with probabilities
    rows_csv = tmp_path / "rows.csv"
    rows_csv.write_bytes(csv_bytes(predict_part))
    predictions = tmp_path / "predictions.csv"
    code, out, err = cli("predict", "cli-screening", "--csv", rows_csv, "--out", predictions,
                         "--chunk-size", "40")
    assert code == 0, err
    with predictions.open(newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == len(predict_part)
    assert [int(r["sample_id"]) for r in written] == predict_part["sample_id"].tolist()
    right = sum(r["prediction"] == truth for r, truth in zip(written, predict_part["diagnosis"],
                                                             strict=True))
    assert right >= 0.9 * len(written)
    assert {"probability_malignant", "probability_benign"} <= set(written[0])
    assert f"Predicted {len(predict_part)} rows with model v1" in err

    # each row's prediction id, its record, and feedback from a CSV through the CLI
    ids = [r["prediction_id"] for r in written]
    assert len(set(ids)) == len(written) and all(len(i) == 32 for i in ids)
    wait_until(lambda: len(client.records.list(project, source="realtime")) == len(written),
               timeout=10, message="the prediction records")
    assert client.records.get(project, ids[0])["output"] == written[0]["prediction"]
    labels = tmp_path / "labels.csv"
    labels.write_text("prediction_id,diagnosis\n" + "".join(
        f"{i},{truth}\n" for i, truth in zip(ids[:10], predict_part["diagnosis"], strict=False))
        + f"{ids[0]},benign\n{'0' * 32},benign\n")
    code, _, err = cli("feedback", "cli-screening", labels)
    assert code == 0, err
    assert "Labels kept: 10, refused: 2" in err
    assert f"line 12: {ids[0]}: prediction_id repeats row 0" in err
    assert "line 13: " + "0" * 32 + ": prediction_id is unknown" in err
    code, _, err = cli("feedback", "cli-screening", labels)  # all labeled already
    assert code == 1 and "Labels kept: 0, refused: 12" in err
    code, out, err = cli("records", "cli-screening", "--labeled", "--limit", "100")
    assert code == 0 and len(out.splitlines()) == 10 and "actual=" in out, err
    exported = tmp_path / "records.jsonl"
    code, _, err = cli("records", "cli-screening", "--export", exported, "--format", "jsonl",
                       "--labeled")
    assert code == 0, err
    kept = [json.loads(line) for line in exported.read_text().splitlines()]
    assert sorted(r["prediction_id"] for r in kept) == sorted(ids[:10])
    more = client.records.feedback(project, [(ids[10], predict_part["diagnosis"].iloc[10]),
                                             {"prediction_id": ids[11], "actual": [1]}])
    assert more["accepted"] == 1 and more["rejected"][0]["row"] == 1
    assert more["rejected"][0]["reason"].startswith("actual: ")
    assert len(client.records.list(project, labeled=True)) == 11
    client.records.export(project, tmp_path / "records.csv", labeled=False)
    with (tmp_path / "records.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(written) - 11

    # the CLI sends the cells as they are: "NA", "n/a" and empty cells are missing values, as in
    # a batch file; "inf" is refused, naming the record and the column
    lines = csv_bytes(predict_part.head(3)).decode().splitlines()
    header = lines[0].split(",")
    holes = [line.split(",") for line in lines[1:]]
    holes[0][2], holes[1][3], holes[2][4] = "NA", " n/a ", ""
    rows_csv.write_text("\n".join(",".join(cells) for cells in [header, *holes]) + "\n")
    code, _, err = cli("predict", "cli-screening", "--csv", rows_csv, "--out", predictions)
    assert code == 0 and "Predicted 3 rows with model v1" in err, err
    holes[0][2] = "inf"
    rows_csv.write_text("\n".join(",".join(cells) for cells in [header, *holes]) + "\n")
    code, _, err = cli("predict", "cli-screening", "--csv", rows_csv, "--out", predictions)
    assert code != 0 and f"Record 0, {header[2]}: 'inf' is out of range" in err, err

    # real-time prediction of records through the client
    records = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
               for row in predict_part.drop(columns=["diagnosis"]).head(25).to_dict("records")]
    answer = client.predict_records(project, records, chunk_size=10)
    assert answer["rows"] == 25 and len(answer["predictions"]) == 25
    assert len(set(answer["prediction_ids"])) == 25  # merged over the chunks
    assert len(answer["probabilities"]) == 25 and answer["model_version"] == 1

    # batch prediction of prediction_batch_files/ and the download of its output
    client.files.upload(project, "prediction_batch_files/",
                        sorted(write_batches(tmp_path / "to-predict", predict_part,
                                             "cancer", 2).iterdir()))
    outputs = tmp_path / "outputs"  # not there yet: made, not written as a file (item 14)
    code, out, err = cli("predict", "cli-screening", "--download", outputs)
    assert code == 0, err
    downloaded = Path(out.strip().splitlines()[-1])
    assert downloaded.parent == outputs and downloaded.is_file()
    with downloaded.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == len(predict_part)
    batch = client.executions.list(project, limit=1)[0]
    assert batch["kind"] == "predict" and batch["result"]["rows"] == len(predict_part)
    again = client.download_output(project, batch, tmp_path / "again.csv")
    assert again.read_bytes() == downloaded.read_bytes()

    # download a project file; models
    code, out, err = cli("download", "cli-screening", "models/v1/manifest.json", tmp_path)
    assert code == 0, err
    assert "model.joblib" in (tmp_path / "manifest.json").read_text()
    models = client.models.list(project)
    assert [m["version"] for m in models] == [1] and models[0]["active"]
    assert client.models.get(project, 1)["version"] == 1
    assert client.models.compare(project, 1, 1)["metrics"]

    # errors: the server's error body, and an unreachable server
    with pytest.raises(ApiError) as caught:
        client.models.get(project, 7)
    assert caught.value.status == 404 and caught.value.code == "not_found"
    assert caught.value.message == "Model version v7 does not exist."
    code, _, err = cli("download", "cli-screening", "models/v9/nothing.json", tmp_path)
    assert code == 1 and err.startswith("trainyard: ")
    with pytest.raises(ConnectionFailed, match="cannot reach Trainyard at http://127.0.0.1:9"):
        Client("http://127.0.0.1:9", token).projects.list()


def test_training_without_files_fails_with_the_plain_message(live_server, cli, tmp_path):
    token = make_token(live_server.url)
    client = Client(live_server.url, token)
    project = client.projects.create(**{k: v for k, v in cancer_project("Empty").items()})
    assert project["slug"] == "empty"

    code, _, _ = cli("projects")
    assert code == 2  # not logged in yet

    # the console script, as a real process, configured by the environment alone
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "nowhere"),
           "TRAINYARD_URL": live_server.url, "TRAINYARD_TOKEN": token}
    done = subprocess.run([str(TRAINYARD), "train", "empty", "--follow"], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"trainyard: {NO_FILES}"
    assert NO_FILES in done.stdout  # the log line of the failure was printed too
    listed = subprocess.run([str(TRAINYARD), "projects"], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "empty" in listed.stdout

    # in-process, logged in: the failed execution's log followed to its end says the same
    assert cli("login", "--url", live_server.url, "--token", token)[0] == 0
    code, out, err = cli("logs", project["id"], "latest", "--follow")
    assert code == 1 and NO_FILES in out
    assert err.strip().splitlines()[-1] == f"trainyard: {NO_FILES}"

    # any kind through `run`: the server decides what exists and checks the options
    code, out, err = cli("run", "empty", "train", "--follow")
    assert code == 1 and NO_FILES in out
    assert err.strip().splitlines()[-1] == f"trainyard: {NO_FILES}"
    code, _, err = cli("run", "empty", "bake")
    assert code == 1 and "kind must be" in err and "train" in err
    code, _, err = cli("run", "empty", "predict", "--option", "version")
    assert code == 1 and err.strip() == "trainyard: --option takes NAME=VALUE, not 'version'"
    code, _, err = cli("run", "empty", "predict", "-o", "version=7")
    assert code == 1 and err.startswith("trainyard: ")

    code, _, err = cli("train", "no-such-project")
    assert code == 1 and err.strip() == "trainyard: no project with the id or slug " \
                                        "'no-such-project'"


def test_a_model_trained_elsewhere_is_imported_from_the_cli_and_refused_by_the_client(
        live_server, cli, tmp_path):
    """`trainyard import-model` sends a skops file and follows the import to its version; the
    client's import of a file with an untrusted type is refused with the type named."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    token = make_token(live_server.url)
    client = Client(live_server.url, token)
    project = client.projects.create(**cancer_project("Imported"))
    frame = cancer_frame()
    features = [c for c in frame.columns if c not in ("diagnosis", "sample_id")]
    model = LogisticRegression(max_iter=5000).fit(frame[features].to_numpy(), frame["diagnosis"])
    (tmp_path / "model.skops").write_bytes(sio.dumps(model))
    sample = tmp_path / "cancer_20270101_000000.csv"
    sample.write_bytes(csv_bytes(frame.iloc[:60]))

    assert cli("login", "--url", live_server.url, "--token", token)[0] == 0
    code, out, err = cli("import-model", "imported", tmp_path / "model.skops", "--sample", sample,
                         "--follow")
    assert code == 0, err
    assert "every type it names is trusted" in out
    assert err.strip().splitlines()[-1] == "Imported as model v1 (LogisticRegression), now active"
    assert client.models.get(project, 1)["origin"]["kind"] == "imported"

    (tmp_path / "odd.skops").write_bytes(sio.dumps(OddModel()))
    with pytest.raises(ApiError) as refused:
        client.models.import_file(project, tmp_path / "odd.skops")
    assert refused.value.status == 422
    assert refused.value.details["untrusted_types"] == [f"{__name__}.OddModel"]
