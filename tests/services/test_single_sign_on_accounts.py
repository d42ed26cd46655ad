"""The account rules of single sign-on (``services.single_sign_on``) on verified claims, as the
controller hands them over after Authlib checked the ID token (the protocol itself runs against
a real provider in ``tests/controllers/test_single_sign_on.py``)."""

from __future__ import annotations

import pytest

from entity.user import User
from exception_layer import AccessDenied, Unauthenticated
from services.context import Context
from services.single_sign_on import identity_of, sign_on

ISSUER = "https://login.example.com"


@pytest.fixture
def ctx(app):
    platform = app.extensions["trainyard"]
    platform.settings.update(OIDC_GROUPS_CLAIM="groups",
                             OIDC_TEAM_MAPPING={"ds": "Data Science", "ml": "data science"})
    return Context(platform)


def test_claims_without_an_identity_or_an_address_are_refused(ctx):
    with pytest.raises(Unauthenticated):
        sign_on(ctx, {"iss": ISSUER})
    with pytest.raises(Unauthenticated, match="e-mail"):
        sign_on(ctx, {"iss": ISSUER, "sub": "x"})
    assert ctx.db.users.count() == 0


def test_no_account_is_made_when_creation_is_off_and_a_deactivated_one_stays_out(ctx):
    ctx.platform.settings["OIDC_CREATE_USERS"] = False
    with pytest.raises(AccessDenied, match="invite"):
        sign_on(ctx, {"iss": ISSUER, "sub": "x", "email": "x@example.com"})
    assert ctx.db.users.count() == 0
    ctx.platform.settings["OIDC_CREATE_USERS"] = True
    user = sign_on(ctx, {"iss": ISSUER, "sub": "x", "email": "x@example.com",
                         "groups": ["ds", "ml", 7]})
    # two claim values naming one team (by name or slug): one membership
    assert [t.slug for t in ctx.db.teams.teams_of(user.id)] == ["data-science"]
    user.active = False
    ctx.db.users.save(user)
    with pytest.raises(AccessDenied, match="deactivated"):
        sign_on(ctx, {"iss": ISSUER, "sub": "x", "email": "x@example.com"})


def test_linking_can_be_turned_off_and_a_linked_account_is_not_taken_by_another_identity(ctx):
    ctx.db.users.add(User(email="eve@example.com", name="Eve", password_hash="h"))
    ctx.platform.settings["OIDC_LINK_EXISTING"] = "never"
    claims = {"iss": ISSUER, "sub": "eve", "email": "eve@example.com", "email_verified": True}
    with pytest.raises(AccessDenied, match="cannot be linked"):
        sign_on(ctx, claims)
    ctx.platform.settings["OIDC_LINK_EXISTING"] = "verified"
    assert sign_on(ctx, claims).sso_subject == identity_of(claims)
    with pytest.raises(AccessDenied, match="cannot be linked"):
        sign_on(ctx, {**claims, "iss": "https://other.example.com"})
