"""Teams and their memberships over every document-store backend, and what a team gives its
members: a project role, and a principal in grants."""

from __future__ import annotations

import pytest

from entity.storage_connection import StorageConnection
from entity.team import (
    Team,
    TeamMembership,
    principals_of,
    team_principal,
    team_slug,
    user_principal,
)
from exception_layer import DuplicateKey


@pytest.fixture
def make_team(db):
    def make(name: str) -> Team:
        return db.teams.add(Team(name=name, slug=team_slug(name)))
    return make


def test_team_round_trips_and_its_slug_is_unique(db, make_team):
    team = make_team("Data Science")
    assert team.slug == "data-science"
    assert db.teams.get(team.id) == team
    assert db.teams.get_by_slug("data-science") == team
    with pytest.raises(DuplicateKey):
        make_team("data science")
    team.description = "Churn and more"
    db.teams.save(team)
    assert db.teams.get(team.id).description == "Churn and more"


def test_memberships_give_the_teams_of_a_user(db, make_user, make_team):
    ada, bob = make_user(), make_user()
    red, blue = make_team("Red"), make_team("Blue")
    db.teams.put_member(TeamMembership(red.id, ada.id, "lead"))
    db.teams.put_member(TeamMembership(blue.id, ada.id))
    db.teams.put_member(TeamMembership(blue.id, bob.id))
    assert [t.name for t in db.teams.teams_of(ada.id)] == ["Blue", "Red"]
    assert db.teams.team_ids_of(bob.id) == {blue.id}
    assert db.teams.membership(red.id, ada.id).role == "lead"
    db.teams.put_member(TeamMembership(red.id, ada.id, "member"))  # a changed role
    assert db.teams.membership(red.id, ada.id).role == "member"
    assert {m.user_id for m in db.teams.members(blue.id)} == {ada.id, bob.id}
    # every read of a user carries their teams
    assert db.users.get(ada.id).team_ids == {red.id, blue.id}
    assert db.users.get_by_email(bob.email).team_ids == {blue.id}
    assert {u.id: u.team_ids for u in db.users.list()} == {ada.id: {red.id, blue.id},
                                                           bob.id: {blue.id}}
    assert db.teams.remove_member(blue.id, ada.id) is True
    assert db.teams.remove_member(blue.id, ada.id) is False
    assert db.users.get(ada.id).team_ids == {red.id}
    assert sorted(db.teams.delete(blue.id)) == [bob.id]
    assert db.teams.get(blue.id) is None and db.users.get(bob.id).team_ids == frozenset()


def test_a_team_role_on_a_project_reaches_its_members_and_the_higher_role_wins(
        db, make_user, make_team, make_project):
    ada, bob, eve = make_user(), make_user(), make_user()
    team = make_team("Analysts")
    for user in (ada, bob):
        db.teams.put_member(TeamMembership(team.id, user.id))
    project = make_project(members={bob.id: "editor"}, teams={team.id: "viewer"})
    project = db.projects.get(project.id)  # the team role is stored
    assert project.teams == {team.id: "viewer"}
    ada, bob, eve = (db.users.get(u.id) for u in (ada, bob, eve))
    assert project.role_of(ada) == "viewer"
    assert project.role_of(bob) == "editor"  # own role higher than the team's
    assert project.role_of(eve) is None
    project.teams[team.id] = "owner"
    assert project.role_of(bob) == "owner"  # team role higher than own
    db.teams.remove_member(team.id, ada.id)
    assert project.role_of(db.users.get(ada.id)) is None


def test_a_team_is_a_principal_of_its_members_in_connection_grants(db, make_user, make_team):
    ada, eve = make_user(), make_user()
    team = make_team("Platform")
    db.teams.put_member(TeamMembership(team.id, ada.id))
    ada, eve = db.users.get(ada.id), db.users.get(eve.id)
    assert principals_of(ada) == [user_principal(ada.id), team_principal(team.id)]
    connection = StorageConnection(name="s3", kind="s3", settings={},
                                   grants=[team_principal(team.id)])
    assert connection.usable_by(ada) and not connection.usable_by(eve)
