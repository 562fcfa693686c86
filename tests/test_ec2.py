"""The EC2-compatible API driven by stock boto3 and the AWS CLI against the live server,
with a real Celery worker running the sim backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from instances.choices import Status
from instances.models import Instance
from tenancy import services as tenancy_services

from .conftest import wait_until

REGION = "RegionOne"
FAST_WORKER = {
    "ADMINVMS_SIM_BOOT_SECONDS": "0.5",
    "ADMINVMS_SIM_REBOOT_SECONDS": "0.5",
    "ADMINVMS_SIM_STOP_SECONDS": "0.5",
    "ADMINVMS_SIM_DELETE_SECONDS": "0.5",
    "ADMINVMS_POLL_INTERVAL": "0.2",
}
QUICK = {"Delay": 1, "MaxAttempts": 60}


@pytest.fixture(autouse=True)
def no_aws_files(monkeypatch, tmp_path):
    """boto3 and the CLI read nothing of this machine's AWS configuration."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ec2(demo, live_server):
    """``ec2(user)`` → a stock boto3 EC2 client with a new access key of ``user``, on the live server."""

    def make(user, project=None):
        credential, secret = tenancy_services.ec2_credential_create(user=user, project=project)
        client = boto3.client(
            "ec2",
            endpoint_url=f"{live_server.url}/ec2/",
            region_name=REGION,
            aws_access_key_id=credential.access,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )
        client.credential = (credential.access, secret)
        return client

    return make


def with_category(client, slug: str):
    """The ``Category`` parameter, added to every call through boto3's event hooks."""

    def add(params, **kwargs):
        params["body"]["Category"] = slug

    client.meta.events.register("before-call.ec2.*", add)
    return client


def ids(reservations) -> set[str]:
    return {i["InstanceId"] for r in reservations for i in r["Instances"]}


def state(client, instance_id: str) -> str:
    [reservation] = client.describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservation["Instances"][0]["State"]["Name"]


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


@pytest.mark.worker
def test_boto3_runs_describes_reboots_stops_starts_and_terminates_a_standard_instance(demo, ec2, workers):
    worker = workers(**FAST_WORKER)
    client = ec2(demo.alice)
    answer = client.run_instances(
        MinCount=1,
        MaxCount=1,
        InstanceType="m1.small",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "env", "Value": "prod"}]}
        ],
    )
    [launched] = answer["Instances"]
    instance_id = launched["InstanceId"]
    assert instance_id.startswith("i-") and answer["ReservationId"].startswith("r-")
    assert launched["State"] == {"Code": 0, "Name": "pending"}
    assert launched["InstanceType"] == "m1.small"
    row = Instance.objects.get(pk=instance_id[2:])
    assert (row.name, row.category.slug, row.project) == ("web", "standard", demo.acme)
    assert row.tags == {"Name": "web", "env": "prod"}

    client.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=QUICK)
    found = client.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}, {"Name": "tag:env", "Values": ["prod"]}]
    )["Reservations"]
    assert ids(found) == {instance_id}
    [described] = found[0]["Instances"]
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags == {"Name": "web", "env": "prod", "adminvms:category": "standard", "adminvms:project": "acme"}
    assert client.describe_instances(Filters=[{"Name": "tag:env", "Values": ["dev"]}])["Reservations"] == []

    client.reboot_instances(InstanceIds=[instance_id])
    wait_until(
        lambda: (
            Instance.objects.get(pk=row.pk).events.filter(event="reboot").exists()
            or not Instance.objects.get(pk=row.pk).task_state
        ),
        30,
        "reboot settles",
        worker,
    )
    client.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=QUICK)
    wait_until(lambda: not Instance.objects.get(pk=row.pk).task_state, 30, "reboot settles", worker)

    stopped = client.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]
    assert stopped["PreviousState"]["Name"] == "running"
    assert stopped["CurrentState"]["Name"] == "stopping"
    client.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=QUICK)
    # Stopping a stopped instance answers its state, as EC2 does.
    again = client.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]
    assert again["CurrentState"] == again["PreviousState"] == {"Code": 80, "Name": "stopped"}

    started = client.start_instances(InstanceIds=[instance_id])["StartingInstances"][0]
    assert started["CurrentState"]["Name"] == "pending"
    client.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=QUICK)

    gone = client.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"][0]
    assert gone["CurrentState"] == {"Code": 32, "Name": "shutting-down"}
    client.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=QUICK)
    assert Instance.objects.get(pk=row.pk).status == Status.DELETED
    # Terminated instances stay visible as terminated for a while, in listings too.
    listed = client.describe_instances()["Reservations"]
    assert instance_id in ids(listed)
    assert state(client, instance_id) == "terminated"


@pytest.mark.worker
def test_boto3_runs_appliances_by_the_category_parameter_and_by_the_tag(demo, ec2, workers):
    worker = workers(**FAST_WORKER)
    plain = ec2(demo.alice)
    by_parameter = with_category(ec2(demo.alice), "vsa")
    [first] = by_parameter.run_instances(MinCount=1, MaxCount=1)["Instances"]
    [second] = plain.run_instances(
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "adminvms:category", "Value": "vsa"}]}],
    )["Instances"]
    appliances = {first["InstanceId"], second["InstanceId"]}
    assert {i.category.slug for i in Instance.objects.all()} == {"vsa"}

    plain.get_waiter("instance_running").wait(InstanceIds=sorted(appliances), WaiterConfig=QUICK)
    # Without a category nothing changes for existing users: the listing is standard instances only.
    assert plain.describe_instances()["Reservations"] == []
    assert ids(by_parameter.describe_instances()["Reservations"]) == appliances
    assert (
        ids(plain.describe_instances(Filters=[{"Name": "category", "Values": ["vsa"]}])["Reservations"]) == appliances
    )
    by_parameter.reboot_instances(InstanceIds=[first["InstanceId"]])  # vsa grants its members reboot
    wait_until(lambda: not Instance.objects.filter(task_state__gt="").exists(), 30, "reboot settles", worker)
    # vsa does not grant stop.
    with pytest.raises(ClientError) as refused:
        by_parameter.stop_instances(InstanceIds=[first["InstanceId"]])
    assert error_code(refused) == "UnauthorizedOperation"

    by_parameter.terminate_instances(InstanceIds=sorted(appliances))
    plain.get_waiter("instance_terminated").wait(InstanceIds=sorted(appliances), WaiterConfig=QUICK)


def test_a_members_boto3_cannot_see_or_touch_another_projects_or_a_provider_instance(demo, ec2):
    bobs = with_category(ec2(demo.bob), "standard")
    [theirs] = bobs.run_instances(MinCount=1, MaxCount=1)["Instances"]
    admin = ec2(demo.admin)
    tags = [{"Key": "adminvms:category", "Value": "cache"}, {"Key": "adminvms:project", "Value": "acme"}]
    [provider] = admin.run_instances(
        MinCount=1, MaxCount=1, TagSpecifications=[{"ResourceType": "instance", "Tags": tags}]
    )["Instances"]
    alice = ec2(demo.alice)
    for instance_id in (theirs["InstanceId"], provider["InstanceId"]):
        for call in (alice.describe_instances, alice.terminate_instances, alice.reboot_instances):
            with pytest.raises(ClientError) as refused:
                call(InstanceIds=[instance_id])
            assert error_code(refused) == "InvalidInstanceID.NotFound"
    assert ids(alice.describe_instances()["Reservations"]) == set()
    with pytest.raises(ClientError) as refused:
        alice.describe_instances(Filters=[{"Name": "category", "Values": ["cache"]}])
    assert error_code(refused) == "InvalidParameterValue"
    assert not Instance.objects.filter(status__in=[Status.DELETING, Status.DELETED]).exists()


def test_boto3_paginates_describe_instances(demo, ec2):
    client = ec2(demo.alice)
    launched = set()
    for _ in range(3):
        launched |= {i["InstanceId"] for i in client.run_instances(MinCount=4, MaxCount=4)["Instances"]}
    pages = list(client.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
    assert [len(ids(p["Reservations"])) for p in pages] == [5, 5, 2]
    assert set().union(*(ids(p["Reservations"]) for p in pages)) == launched
    assert "NextToken" not in pages[-1]


def aws(client, *arguments: str) -> dict:
    """The AWS CLI (awscli from PyPI) against the live server, with the client's access key."""
    access, secret = client.credential
    env = {**os.environ, "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_OUTPUT": "json"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "awscli",
            "ec2",
            *arguments,
            "--endpoint-url",
            client.meta.endpoint_url,
            "--region",
            REGION,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_aws_cli_runs_and_describes_instances(demo, ec2):
    client = ec2(demo.alice)
    launched = aws(
        client,
        "run-instances",
        "--count",
        "2",
        "--instance-type",
        "m1.small",
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=Name,Value=cli}]",
    )
    made = {i["InstanceId"] for i in launched["Instances"]}
    assert len(made) == 2 and {i.name for i in Instance.objects.all()} == {"cli-1", "cli-2"}
    described = aws(client, "describe-instances", "--filters", "Name=tag:Name,Values=cli-1,cli-2")
    assert ids(described["Reservations"]) == made
    appliance = aws(
        client,
        "run-instances",
        "--count",
        "1",
        "--tag-specifications",
        "ResourceType=instance,Tags=[{Key=adminvms:category,Value=vsa}]",
    )
    [vsa] = appliance["Instances"]
    assert Instance.objects.get(pk=vsa["InstanceId"][2:]).category.slug == "vsa"
    assert ids(aws(client, "describe-instances")["Reservations"]) == made
