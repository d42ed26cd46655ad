"""Storage locations compare across storages: one place named two ways has one location, and a
folder inside another has a location that starts with the other's."""

from __future__ import annotations

from cloud_storage import open_storage


def test_local_folders_are_located_by_their_real_path(tmp_path):
    (tmp_path / "data" / "storage").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "data", target_is_directory=True)
    outer = open_storage((tmp_path / "data").as_uri())
    through_link = open_storage((tmp_path / "link").as_uri() + "/")
    inner = open_storage((tmp_path / "data" / "storage").as_uri())
    assert outer.location() == through_link.location() == f"file://{tmp_path.resolve()}/data/"
    assert outer.location("storage/") == inner.location()
    assert inner.location("p/").startswith(outer.location())
    assert not open_storage((tmp_path / "data2").as_uri()).location().startswith(
        outer.location())


def test_object_stores_are_located_by_bucket_and_prefix():
    credentials = {"access_key_id": "AKIA", "secret_access_key": "x"}
    whole = open_storage("s3://lake", credentials)
    teams = open_storage("s3://lake/teams/a/", credentials)
    assert whole.location("teams/a/") == teams.location() == "s3://lake/teams/a/"
    assert open_storage("gs://lake/teams").location() == "gs://lake/teams/"
    named = open_storage("wasbs://box@acct/prefix", {"account_key": "a2V5"})
    short = open_storage("az://box/prefix", {"account_name": "acct", "account_key": "a2V5"})
    assert named.location("p/") == short.location("p/") == "wasbs://acct/box/prefix/p/"
