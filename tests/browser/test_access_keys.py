"""A member creates an EC2 access key in the portal, uses it with stock boto3, and revokes it."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import expect

from instances.models import Instance
from tenancy.models import Ec2Credential

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def aws_env(tmp_path, monkeypatch):
    """No AWS configuration of this machine's user reaches boto3: empty files, no key in the environment."""
    for name in ("config", "credentials"):
        (tmp_path / name).write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


def test_member_creates_a_key_uses_it_with_boto3_and_revokes_it(login, stack, aws_env, demo):
    base_url, _worker = stack
    page = login("alice")

    page.click("nav >> text=Access keys")
    page.wait_for_url("**/portal/keys/")
    expect(page.locator("#ec2-endpoint")).to_have_text(f"{base_url}/ec2/")
    expect(page.locator("#access-keys")).to_contain_text("No access keys.")
    page.select_option("#id_project", "acme")
    page.click("#access-key-form button[type=submit]")
    expect(page.locator("#issued-key")).to_contain_text("shown only this once")
    access = page.inner_text("#issued-access").strip()
    secret = page.inner_text("#issued-secret").strip()
    expect(page.locator(f'#access-keys tr[data-access="{access}"]')).to_contain_text("ACME Corp")
    screenshot(page, "portal-access-keys")

    ec2 = boto3.client(
        "ec2",
        endpoint_url=f"{base_url}/ec2/",
        region_name="RegionOne",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
    )
    answer = ec2.describe_instances()
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["Reservations"] == []

    # The page's recipe for the Category parameter, which boto3 itself does not know.
    def with_category(params, **kwargs):
        params["body"]["Category"] = "vsa"

    ec2.meta.events.register("before-call.ec2.RunInstances", with_category)
    reservation = ec2.run_instances(MinCount=1, MaxCount=1)
    [launched] = Instance.objects.filter(project=demo.acme, category__slug="vsa")
    assert reservation["Instances"][0]["InstanceId"].startswith("i-")

    page.goto("/portal/keys/")  # a plain visit: the secret is gone, the key has been used
    expect(page.locator("#issued-key")).to_have_count(0)
    assert secret not in page.content()
    row = page.locator(f'#access-keys tr[data-access="{access}"]')
    expect(row).not_to_contain_text("never")

    page.once("dialog", lambda dialog: dialog.accept())  # the data-confirm question
    page.click(f'[data-revoke="{access}"]')
    expect(page.locator(".alert-success")).to_contain_text(f"Access key {access} revoked")
    expect(row).to_have_count(0)
    assert Ec2Credential.objects.get(access=access).revoked_at is not None

    with pytest.raises(ClientError) as refused:
        ec2.describe_instances()
    assert refused.value.response["Error"]["Code"] == "AuthFailure"
    assert launched.pk  # launched with the key before it was revoked
