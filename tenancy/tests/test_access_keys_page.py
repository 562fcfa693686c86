"""The portal's "Access keys" page: a user's EC2 access keys, their secret shown once, revoked by their owner."""

from __future__ import annotations

import re

import pytest

from tenancy import services
from tenancy.choices import Role
from tenancy.models import Ec2Credential

PAGE = "/portal/keys/"


def _revoke_url(access: str) -> str:
    return f"{PAGE}{access}/revoke/"


def _issued(response) -> tuple[str, str]:
    """The access key id and the secret of the one-time panel."""
    html = response.content.decode()
    access = re.search(r'id="issued-access">([^<]+)<', html).group(1)
    secret = re.search(r'id="issued-secret">([^<]+)<', html).group(1)
    return access, secret


def _field_errors(response) -> list[str]:
    return re.findall(r'data-field="project">([^<]+)<', response.content.decode())


def test_create_shows_the_secret_once_and_never_again(demo, web):
    client = web(demo.alice)
    response = client.post(PAGE, {"project": "acme"})
    assert response.status_code == 200, response.content
    assert "no-store" in response["Cache-Control"]
    access, secret = _issued(response)
    assert response.content.decode().count(secret) == 1

    credential = Ec2Credential.objects.get(access=access)
    assert (credential.user, credential.project, credential.revoked_at) == (demo.alice, demo.acme, None)
    assert secret not in credential.secret_encrypted  # stored encrypted
    assert secret not in str(client.session.items())

    listed = client.get(PAGE)
    assert listed.status_code == 200
    html = listed.content.decode()
    assert f'data-access="{access}"' in html
    assert secret not in html
    assert 'id="issued-secret"' not in html


def test_the_page_lists_keys_and_explains_the_endpoint(demo, web):
    credential, _secret = services.ec2_credential_create(user=demo.alice)
    html = web(demo.alice).get(PAGE).content.decode()
    row = re.search(rf'<tr data-access="{credential.access}">.*?</tr>', html, re.S).group(0)
    assert "ACME Corp" in row and "never" in row  # project, not used yet
    assert f'action="{_revoke_url(credential.access)}"' in row and "data-confirm=" in row
    assert 'id="ec2-endpoint">http://testserver/ec2/<' in html
    assert 'id="ec2-region">RegionOne<' in html
    assert "before-call.ec2.RunInstances" in html and "aws ec2 describe-instances" in html
    assert "adminvms:category" in html
    assert 'href="/portal/keys/"' in html  # the navbar's link


def test_revoke_and_another_users_key_stays(demo, web):
    mine, _ = services.ec2_credential_create(user=demo.alice)
    others, _ = services.ec2_credential_create(user=demo.bob)
    client = web(demo.alice)

    refused = client.post(_revoke_url(others.access), follow=True)
    assert refused.status_code == 200
    assert "No such access key." in refused.content.decode()
    others.refresh_from_db()
    assert others.revoked_at is None

    response = client.post(_revoke_url(mine.access), follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert f"Access key {mine.access} revoked" in response.content.decode()
    assert f'data-access="{mine.access}"' not in response.content.decode()
    mine.refresh_from_db()
    assert mine.revoked_at is not None

    assert client.get(_revoke_url(mine.access)).status_code == 405  # revoking is a POST


def test_a_reader_may_create_one_for_their_project(demo, web):
    client = web(demo.rita)
    assert 'value="acme" selected' in client.get(PAGE).content.decode()  # their only project
    response = client.post(PAGE, {"project": ""})
    access, _secret = _issued(response)
    assert Ec2Credential.objects.get(access=access).project == demo.acme


def test_a_provider_admin_may_create_one_without_project(demo, web):
    client = web(demo.admin)
    html = client.get(PAGE).content.decode()
    assert "None: name the project in each request" in html and "adminvms:project" in html
    access, _secret = _issued(client.post(PAGE, {"project": ""}))
    assert Ec2Credential.objects.get(access=access).project is None


def test_anonymous_goes_to_the_login_page(demo, web):
    credential, _ = services.ec2_credential_create(user=demo.alice)
    client = web()
    for response in (
        client.get(PAGE),
        client.post(PAGE, {"project": "acme"}),
        client.post(_revoke_url(credential.access)),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert list(Ec2Credential.objects.values_list("access", "revoked_at")) == [(credential.access, None)]


def test_a_member_of_two_projects_must_pick(demo, web):
    services.membership_ensure(user=demo.alice, project=demo.globex, role=Role.READER)
    client = web(demo.alice)
    assert (
        " selected" not in re.search(r'<select name="project".*?</select>', client.get(PAGE).content.decode(), re.S)[0]
    )

    response = client.post(PAGE, {"project": ""})
    assert response.status_code == 200
    assert _field_errors(response) == ["Name the project the access key acts for."]
    assert not Ec2Credential.objects.exists()

    access, _ = _issued(client.post(PAGE, {"project": "globex"}))
    assert Ec2Credential.objects.get(access=access).project == demo.globex

    # The project chosen in the navbar's switcher is the default.
    client.post("/project/", {"project": "globex"})
    assert 'value="globex" selected' in client.get(PAGE).content.decode()


@pytest.mark.parametrize("project", ["globex", "no-such-project"])
def test_a_project_not_theirs_is_an_error_and_no_key(demo, web, project):
    response = web(demo.alice).post(PAGE, {"project": project})
    assert response.status_code == 200
    assert _field_errors(response) == ["No such project."]
    assert 'id="issued-secret"' not in response.content.decode()
    assert not Ec2Credential.objects.exists()


def test_the_most_keys_allowed_is_a_form_error(demo, web):
    for _ in range(services.EC2_KEYS_PER_USER):
        services.ec2_credential_create(user=demo.bob)
    response = web(demo.bob).post(PAGE, {"project": "globex"})
    assert response.status_code == 200
    assert f"You hold {services.EC2_KEYS_PER_USER} access keys; revoke one first." in response.content.decode()
    assert Ec2Credential.objects.filter(user=demo.bob).count() == services.EC2_KEYS_PER_USER
