"""Streamed transfers: raw-body uploads piped into the storage (checked from their first bytes,
nothing stored when refused) and signed, expiring download links."""

from __future__ import annotations

import pytest

from tests.factories import batch_files, cancer_frame, cancer_project


@pytest.fixture
def project(api):
    return api.create_project(cancer_project())


def put(api, project, path, data, **headers):
    return api.client.put(f"/api/v1/projects/{project['id']}/files/content?path={path}",
                          data=data, headers={"X-CSRFToken": api.client.csrf_token, **headers})


def test_raw_body_upload_streams_into_the_storage(api, project):
    name, data = batch_files(cancer_frame(), "cancer", 1)[0]
    response = put(api, project, f"training_batch_files/{name}", data)
    assert response.status_code == 201, response.get_json()
    assert response.get_json() == {"path": f"training_batch_files/{name}", "size": len(data)}
    url = f"/api/v1/projects/{project['id']}/files/content?path=training_batch_files/{name}"
    download = api.client.get(url)
    assert download.data == data
    assert download.headers["Content-Disposition"] == f"attachment; filename*=UTF-8''{name}"

    # On local disk the file itself is served: a broken download can resume, an unchanged one
    # is not sent again.
    part = api.client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    again = api.client.get(url, headers={"If-None-Match": download.headers["ETag"]})
    assert again.status_code == 304 and not again.data


@pytest.mark.parametrize("path, data, status", [
    ("training_batch_files/wrong-name.csv", b"a,b\n1,2\n", 422),
    ("training_batch_files/cancer_20260101_000000.csv", b"", 422),
    ("training_batch_files/cancer_20260101_000000.csv", b"\x89PNG\r\n\x1a\n\x00\x00", 422),
    ("../escape.csv", b"x", 400),
    ("models/v1/model.joblib", b"x", 403),
])
def test_refused_raw_uploads_store_nothing(api, project, path, data, status):
    before = api.get(f"/projects/{project['id']}/files?path=training_batch_files/").get_json()
    response = put(api, project, path, data)
    assert response.status_code == status
    assert response.get_json()["error"]["message"]
    after = api.get(f"/projects/{project['id']}/files?path=training_batch_files/").get_json()
    assert after == before


def test_oversized_raw_upload_is_refused(app, api, project):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = put(api, project, "notes/big.txt", b"x" * 5000)
    assert response.status_code == 413
    assert "MB" in response.get_json()["error"]["message"]
    assert api.get(f"/projects/{project['id']}/files?path=notes/").status_code == 404


def test_signed_links_work_without_login_and_expire(app, api, project, client):
    name, data = batch_files(cancer_frame(), "cancer", 1)[0]
    put(api, project, f"training_batch_files/{name}", data)
    link = api.get(f"/projects/{project['id']}/files/link?path=training_batch_files/{name}"
                   "&expires=60").get_json()
    assert link["url"].startswith("http://localhost/api/v1/download/")
    anonymous = app.test_client()
    fetched = anonymous.get(link["url"].replace("http://localhost", ""))
    assert fetched.status_code == 200 and fetched.data == data
    forged = anonymous.get(link["url"].replace("http://localhost", "")[:-3] + "abc")
    assert forged.status_code == 404
    assert api.get(f"/projects/{project['id']}/files/link?path=training_batch_files/{name}"
                   "&expires=5").status_code == 400
    assert api.get(f"/projects/{project['id']}/files/link?path=nope.csv").status_code == 404

    import time

    from itsdangerous import URLSafeTimedSerializer

    expired = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="trainyard-download-link")
    token = expired.dumps({"project": project["id"], "path": f"training_batch_files/{name}",
                           "ttl": 60})
    real_time = time.time
    try:
        time.time = lambda: real_time() + 120
        late = anonymous.get(f"/api/v1/download/{token}")
    finally:
        time.time = real_time
    assert late.status_code == 404 and "expired" in late.get_json()["error"]["message"]


def _viewer_client(app, api, project):
    """A test client logged in as a new user who is a viewer on ``project``, and that user."""
    from werkzeug.security import generate_password_hash

    from entity.user import User
    from tests.conftest import Auth

    db = app.extensions["trainyard"].db
    viewer = db.users.add(User(email="viewer@example.com", name="viewer",
                               password_hash=generate_password_hash("viewer-password-1")))
    assert api.client.put(f"/api/v1/projects/{project['id']}/members",
                          json={"email": viewer.email, "role": "viewer"},
                          headers={"X-CSRFToken": api.client.csrf_token}).status_code == 200
    client = app.test_client()
    assert Auth(client).login(viewer.email, "viewer-password-1").status_code == 302
    return client, viewer


def _viewer_link(client, project, path):
    response = client.get(f"/api/v1/projects/{project['id']}/files/link?path={path}"
                          "&expires=604800")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["url"].replace("http://localhost", "")


@pytest.mark.parametrize("end_access", ["removed", "deactivated"])
def test_a_share_link_stops_when_its_maker_loses_access(app, api, project, end_access):
    """Issue 21 item 6: a viewer's 7-day link kept working after the viewer was removed from
    the project and deactivated."""
    put(api, project, "notes/shared.txt", b"hello")
    viewer_client, viewer = _viewer_client(app, api, project)
    link = _viewer_link(viewer_client, project, "notes/shared.txt")
    anonymous = app.test_client()
    assert anonymous.get(link).data == b"hello"
    if end_access == "removed":
        assert api.delete(f"/projects/{project['id']}/members/{viewer.id}").status_code == 204
    else:
        assert api.patch(f"/users/{viewer.id}", json={"active": False}).status_code == 200
    refused = anonymous.get(link)
    assert refused.status_code == 404
    assert "lost access" in refused.get_json()["error"]["message"]


def test_a_share_link_does_not_serve_a_file_uploaded_again_in_its_place(app, api, project):
    """Issue 21 item 6: after the file was deleted and uploaded again, the old link served the
    new content."""
    put(api, project, "notes/shared.txt", b"first")
    link = _viewer_link(api.client, project, "notes/shared.txt")
    anonymous = app.test_client()
    assert anonymous.get(link).data == b"first"
    assert api.delete(f"/projects/{project['id']}/files?path=notes/shared.txt").status_code \
        in (200, 204)
    gone = anonymous.get(link)
    assert gone.status_code == 404 and "deleted" in gone.get_json()["error"]["message"]
    put(api, project, "notes/shared.txt", b"other")
    replaced = anonymous.get(link)
    assert replaced.status_code == 404
    assert "replaced" in replaced.get_json()["error"]["message"]
    fresh = _viewer_link(api.client, project, "notes/shared.txt")
    assert anonymous.get(fresh).data == b"other"


def test_share_link_lifetime_is_capped_by_the_setting(app, api, project):
    put(api, project, "notes/shared.txt", b"hello")
    app.config["SHARE_LINK_MAX_SECONDS"] = 3600
    url = f"/projects/{project['id']}/files/link?path=notes/shared.txt"
    too_long = api.get(url + "&expires=7200")
    assert too_long.status_code == 400
    assert "3600" in too_long.get_json()["error"]["message"]
    assert api.get(url + "&expires=3600").status_code == 200


def move(api, project, path, to, name=None):
    body = {"path": path, "to": to} if name is None else {"path": path, "to": to, "name": name}
    return api.client.post(f"/api/v1/projects/{project['id']}/files/move", json=body,
                           headers={"X-CSRFToken": api.client.csrf_token})


def names(api, project, folder):
    listing = api.get(f"/projects/{project['id']}/files?path={folder}").get_json()
    return sorted(f["name"] for f in listing["files"])


def tree(api, project):
    """Every file of the project with its bytes, and every folder."""
    files, folders, waiting = {}, [], [""]
    while waiting:
        folder = waiting.pop()
        listing = api.get(f"/projects/{project['id']}/files?path={folder}").get_json()
        folders += listing["folders"]
        waiting += listing["folders"]
        for entry in listing["files"]:
            files[entry["path"]] = api.client.get(
                f"/api/v1/projects/{project['id']}/files/content?path={entry['path']}").data
    return files, sorted(folders)


def test_move_a_file_between_folders(api, project):
    name, data = batch_files(cancer_frame(), "cancer", 1)[0]
    assert put(api, project, f"incoming/{name}", data).status_code == 201
    response = move(api, project, f"incoming/{name}", "training_batch_files/")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"path": f"training_batch_files/{name}", "size": len(data)}
    assert names(api, project, "training_batch_files/") == [name]
    assert names(api, project, "incoming/") == []
    url = f"/api/v1/projects/{project['id']}/files/content?path=training_batch_files/{name}"
    assert api.client.get(url).data == data


def test_refused_moves_change_nothing(api, project):
    name, data = batch_files(cancer_frame(), "cancer", 1)[0]
    assert put(api, project, f"training_batch_files/{name}", data).status_code == 201
    assert put(api, project, f"incoming/{name}", data).status_code == 201
    assert put(api, project, "incoming/notes.csv", b"a,b\n1,2\n").status_code == 201
    assert put(api, project, "incoming/cancer_20260101_000000.csv", b"a,b\n1,2\n").status_code \
        == 201
    before = {folder: names(api, project, folder) for folder in
              ("training_batch_files/", "incoming/")}
    for path, to, status, words in [
        (f"incoming/{name}", "training_batch_files/", 409, "already a file or folder named"),
        ("incoming/notes.csv", "training_batch_files/", 422, "notes.csv"),
        ("incoming/cancer_20260101_000000.csv", "training_batch_files/", 422, "column"),
        ("incoming/missing.csv", "other/", 404, "missing.csv"),
        (f"incoming/{name}", "models/", 403, "models/"),
        (f"incoming/{name}", "incoming/", 400, "already in incoming/"),
        (f"incoming/{name}", "../", 400, ""),
        # on local disk a file cannot also be a folder
        (f"training_batch_files/{name}", "incoming/notes.csv/", 409, "in the way"),
    ]:
        response = move(api, project, path, to)
        assert response.status_code == status, (path, to, response.get_json())
        assert words in response.get_json()["error"]["message"], response.get_json()
    after = {folder: names(api, project, folder) for folder in before}
    assert after == before


def test_a_file_in_the_way_of_a_folder_is_a_conflict_not_a_storage_failure(api, project):
    assert put(api, project, "notes/a.txt", b"x").status_code == 201
    response = put(api, project, "notes/a.txt/b.txt", b"y")
    assert response.status_code == 409
    assert "in the way" in response.get_json()["error"]["message"]
    response = api.client.post(f"/api/v1/projects/{project['id']}/folders",
                               json={"path": "notes/a.txt/sub/"},
                               headers={"X-CSRFToken": api.client.csrf_token})
    assert response.status_code == 409, response.get_json()
    assert names(api, project, "notes/") == ["a.txt"]


def test_storage_errors_name_the_path_as_the_user_gave_it(api, project):
    """Keys in the storage start with the project's folder; the messages do not."""
    assert put(api, project, "notes/a.txt", b"x").status_code == 201
    answers = [
        put(api, project, "notes/a.txt/b.txt", b"y"),
        api.get(f"/projects/{project['id']}/files/content?path=notes/missing.txt"),
        api.client.delete(f"/api/v1/projects/{project['id']}/files?path=notes/gone.txt",
                          headers={"X-CSRFToken": api.client.csrf_token}),
    ]
    for response, status, path in zip(answers, (409, 404, 404),
                                       ("notes/a.txt/b.txt", "notes/missing.txt",
                                        "notes/gone.txt"), strict=True):
        message = response.get_json()["error"]["message"]
        assert response.status_code == status, message
        assert path in message and project["slug"] + "/" not in message, message


def test_a_folder_moves_whole_with_its_empty_folders(api, project):
    first, second = batch_files(cancer_frame(), "cancer", 2)
    assert put(api, project, f"incoming/day 1/{first[0]}", first[1]).status_code == 201
    assert put(api, project, f"incoming/day 1/more/{second[0]}", second[1]).status_code == 201
    api.client.post(f"/api/v1/projects/{project['id']}/folders",
                    json={"path": "incoming/day 1/empty/"},
                    headers={"X-CSRFToken": api.client.csrf_token})
    files, folders = tree(api, project)

    moved = move(api, project, "incoming/day 1/", "training_batch_files/", "2026 ü")
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json() == {"path": "training_batch_files/2026 ü/", "files": 2}
    after, after_folders = tree(api, project)
    assert after == {path.replace("incoming/day 1/", "training_batch_files/2026 ü/"): data
                     for path, data in files.items()}
    assert "incoming/day 1/" not in after_folders
    assert {"training_batch_files/2026 ü/", "training_batch_files/2026 ü/empty/",
            "training_batch_files/2026 ü/more/"} <= set(after_folders)

    # and back out, renamed, to the top folder
    back = move(api, project, "training_batch_files/2026 ü/", "", "held")
    assert back.status_code == 200 and back.get_json()["files"] == 2
    assert names(api, project, "held/more/") == [second[0]]


def test_rename_a_file_in_place(api, project):
    name, data = batch_files(cancer_frame(), "cancer", 1)[0]
    assert put(api, project, f"training_batch_files/{name}", data).status_code == 201
    renamed = move(api, project, f"training_batch_files/{name}", "training_batch_files/",
                   "cancer_20270101_000000.csv")
    assert renamed.status_code == 200, renamed.get_json()
    assert renamed.get_json() == {"path": "training_batch_files/cancer_20270101_000000.csv",
                                  "size": len(data)}
    assert names(api, project, "training_batch_files/") == ["cancer_20270101_000000.csv"]
    # a name the schema's pattern refuses does not go into a batch folder
    refused = move(api, project, "training_batch_files/cancer_20270101_000000.csv",
                   "training_batch_files/", "cancer.csv")
    assert refused.status_code == 422 and "cancer.csv" in refused.get_json()["error"]["message"]
    assert names(api, project, "training_batch_files/") == ["cancer_20270101_000000.csv"]


def test_refused_folder_moves_change_nothing(app, api, project):
    good, other = batch_files(cancer_frame(), "cancer", 2)
    assert put(api, project, f"incoming/{good[0]}", good[1]).status_code == 201
    assert put(api, project, "incoming/notes.txt", b"not a batch").status_code == 201
    assert put(api, project, f"incoming/sub/{other[0]}", other[1]).status_code == 201
    assert put(api, project, "taken/x.txt", b"x").status_code == 201
    assert put(api, project, "a-file", b"x").status_code == 201
    before = tree(api, project)
    for path, to, name, status, words in [
        # one file of the folder fails the schema: nothing moves, and the message names it
        ("incoming/", "training_batch_files/", None, 422, "incoming/notes.txt"),
        ("incoming/", "", "taken", 409, "already a file or folder named taken"),
        ("incoming/", "", "a-file", 409, "already a file or folder named a-file"),
        ("incoming/", "incoming/sub/", None, 400, "cannot be moved into itself"),
        ("incoming/", "", None, 400, "already in the top folder"),
        ("incoming/", "other/", "a/b", 400, "may not contain '/'"),
        ("incoming/", "models/", None, 403, "models/"),
        ("training_batch_files/", "incoming/", None, 403, "standard folders"),
        ("archive/run/", "incoming/", None, 403, "archive/"),
        ("taken/", "", "training_batch_files", 409, "standard folders"),
        ("missing/", "other/", None, 404, "missing/"),
    ]:
        response = move(api, project, path, to, name)
        assert response.status_code == status, (path, to, response.get_json())
        assert words in response.get_json()["error"]["message"], response.get_json()
    app.config["MAX_MOVE_FILES"] = 2
    response = move(api, project, "incoming/", "other/")
    assert response.status_code == 422
    assert "holds 3 files; a move takes at most 2" in response.get_json()["error"]["message"]
    assert tree(api, project) == before


# -- file names and replacing (issue 21 item 11) ---------------------------------------------

def _raw_multipart(api, project, folder, *names: bytes, overwrite: str | None = None):
    """POST a multipart body written by hand, so each part's filename goes out exactly as a
    browser or curl sends it."""
    body = b"".join(b'--B\r\nContent-Disposition: form-data; name="files"; filename="' + name
                    + b'"\r\nContent-Type: text/plain\r\n\r\nhello\r\n' for name in names)
    query = f"path={folder}" + (f"&overwrite={overwrite}" if overwrite else "")
    return api.client.post(f"/api/v1/projects/{project['id']}/files?{query}",
                           data=body + b"--B--\r\n", content_type="multipart/form-data; boundary=B",
                           headers={"X-CSRFToken": api.client.csrf_token})


@pytest.mark.parametrize("sent, reason", [
    ("invoice\u202excs.txt".encode(), "U+202E"),     # right-to-left override
    ("a\u2066b.txt".encode(), "U+2066"),             # another bidi control
    (b"line%0Abreak.txt", "line break"),             # a browser's encoding of a newline
    (b"..\\x.csv", "backslash"),                     # Werkzeug would read it as ..x.csv
])
def test_confusing_file_names_are_refused_with_a_reason(api, project, sent, reason):
    response = _raw_multipart(api, project, "notes/", sent)
    assert response.status_code in (400, 422), response.get_json()
    error = response.get_json()["error"]
    assert reason in " ".join(error["details"]["files"][0]["reasons"])
    listing = api.get(f"/projects/{project['id']}/files?path=notes/")
    assert listing.status_code == 404 or listing.get_json()["files"] == []


@pytest.mark.parametrize("path, reason", [
    ("notes/a%E2%80%AEb.txt", "U+202E"), ("notes/a%0Ab.txt", "line break"),
    ("notes/..%5Cx.csv", "backslash"),
])
def test_confusing_names_are_refused_through_put_too(api, project, path, reason):
    response = put(api, project, path, b"hello")
    assert response.status_code == 400
    assert reason in response.get_json()["error"]["message"]


def test_two_parts_with_one_name_are_refused(api, project):
    response = _raw_multipart(api, project, "notes/", b"dup.csv", b"dup.csv")
    assert response.status_code == 422
    files = response.get_json()["error"]["details"]["files"]
    assert files == [{"file": "dup.csv",
                      "reasons": ["another file of this upload has the same name"]}]
    assert api.get(f"/projects/{project['id']}/files?path=notes/").status_code == 404


def test_an_upload_replaces_an_existing_file_only_when_asked(api, project):
    assert put(api, project, "notes/a.txt", b"first").status_code == 201
    refused = _raw_multipart(api, project, "notes/", b"a.txt", b"b.txt")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["details"]["existing"] == ["notes/a.txt"]
    content = f"/projects/{project['id']}/files/content?path=notes/"
    assert api.get(content + "a.txt").data == b"first"
    assert api.get(content + "b.txt").status_code == 404  # all or nothing
    again = put(api, project, "notes/a.txt", b"second")
    assert again.status_code == 409
    assert again.get_json()["error"]["details"]["files"] == [
        {"file": "notes/a.txt", "reasons": ["a file of this name already exists"]}]
    assert api.get(content + "a.txt").data == b"first"

    assert _raw_multipart(api, project, "notes/", b"a.txt", overwrite="true").status_code == 201
    assert api.get(content + "a.txt").data == b"hello"
    replaced = api.client.put(f"/api/v1{content}a.txt&overwrite=true", data=b"third",
                              headers={"X-CSRFToken": api.client.csrf_token})
    assert replaced.status_code == 201 and api.get(content + "a.txt").data == b"third"


def test_put_and_post_refuse_a_file_in_one_error_shape(api, project):
    """Issue 21 item 14: POST put the reasons in details.files[], PUT in details.file and
    details.reasons."""
    name, data = "cancer_20260101_000000.csv", b"region,size\nnorth,1\n"
    by_put = put(api, project, f"training_batch_files/{name}", data).get_json()["error"]
    by_post = api.upload(project["id"], "training_batch_files/", [(name, data)]
                         ).get_json()["error"]
    assert by_put["details"]["files"] == by_post["details"]["files"]
    [problem] = by_put["details"]["files"]
    assert problem["file"] == name and len(problem["reasons"]) >= 2
    assert by_put["message"] == by_post["message"]
    assert "; " in by_put["message"]  # the reasons are told apart, not run together
