"""The EC2 query protocol: documents, errors, filters, pagination, idempotency, scope.

Requests are signed by botocore's signer and sent through Django's test client; the
worker side is not needed here (tests/test_ec2.py drives the live server with boto3).
"""

from __future__ import annotations

import pytest

from categories.models import Flavor
from instances.choices import Status
from instances.models import Instance
from tenancy import services as tenancy_services
from tests.ec2_signing import call, code, xml
from tests.factories import InstanceFactory

NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"


@pytest.fixture
def ec2(demo):
    """``ec2(user)(action, **params)`` → the response, signed with a new access key of ``user``."""

    def for_user(user, project=None):
        credential, secret = tenancy_services.ec2_credential_create(user=user, project=project)
        return lambda action, **params: call(credential.access, secret, action, **params)

    return for_user


def texts(root, path: str) -> list[str]:
    return [e.text or "" for e in root.iterfind(path)]


def instance_ids(root) -> list[str]:
    return texts(root, "reservationSet/item/instancesSet/item/instanceId")


def ec2_id(instance) -> str:
    return f"i-{instance.pk.hex}"


def test_success_documents_carry_the_namespace_the_request_id_and_empty_wrappers(ec2, demo):
    response = ec2(demo.alice)("DescribeInstances")
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.startswith(b"<?xml")
    assert f"{NS}DescribeInstancesResponse".encode() not in response.content  # the namespace is a default xmlns
    assert b'<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">' in response.content
    root = xml(response)
    assert root.find("requestId").text
    assert root.find("reservationSet") is not None and list(root.find("reservationSet")) == []

    InstanceFactory(project=demo.acme, category=demo.categories["standard"])
    [item] = xml(ec2(demo.alice)("DescribeInstances")).iterfind("reservationSet/item")
    for wrapper in ("groupSet", "instancesSet", "instancesSet/item/groupSet", "instancesSet/item/tagSet"):
        assert item.find(wrapper) is not None, wrapper
    assert xml(ec2(demo.alice)("DescribeImages")).find("imagesSet") is not None


def test_unknown_actions_and_unsupported_parameters_are_refused_clearly(ec2, demo):
    call = ec2(demo.alice)
    response = call("CreateVpc", CidrBlock="10.0.0.0/16")
    assert (response.status_code, code(response)) == (400, "InvalidAction")
    assert b"RunInstances" in response.content  # it lists what is supported
    response = call("RunInstances", MinCount="1", MaxCount="1", KeyName="mine")
    assert (response.status_code, code(response)) == (400, "UnsupportedOperation")
    assert b"KeyName" in response.content
    assert Instance.objects.count() == 0
    response = call("StopInstances", **{"InstanceId.1": "i-" + "0" * 32, "Force": "true"})
    assert code(response) == "UnsupportedOperation"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"Action": "DescribeInstances", "InstanceId.1": "i-123"}, "InvalidInstanceID.Malformed"),
        ({"Action": "DescribeInstances", "InstanceId.0": "i-" + "0" * 32}, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "InstanceId.x": "i-" + "0" * 32}, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "MaxResults": "2"}, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "MaxResults": "many"}, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "NextToken": "forged"}, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "Filter.1.Name": "vpc-id", "Filter.1.Value.1": "x"}, "InvalidParameterValue"),
        (
            {"Action": "DescribeInstances", "Filter.1.Name": "category", "Filter.1.Value.1": "cache"},
            "InvalidParameterValue",
        ),
        (
            {"Action": "DescribeInstances", "Filter.1.Name": "instance-state-name", "Filter.1.Value.1": "x"},
            "InvalidParameterValue",
        ),
        ({"Action": "DescribeInstances", "Filter.1.Value.1": "x"}, "MissingParameter"),
        ({"Action": "DescribeInstances", "Filter.1.Name": "\x00"}, "InvalidParameterValue"),
        ({"Action": "RunInstances"}, "MissingParameter"),
        ({"Action": "RunInstances", "MinCount": "2", "MaxCount": "1"}, "InvalidParameterValue"),
        ({"Action": "RunInstances", "MinCount": "1", "MaxCount": "1000"}, "InvalidParameterValue"),
        ({"Action": "RunInstances", "MinCount": "1", "MaxCount": "1", "ImageId": "ami-x"}, "InvalidAMIID.Malformed"),
        (
            {"Action": "RunInstances", "MinCount": "1", "MaxCount": "1", "ImageId": "ami-" + "0" * 32},
            "InvalidAMIID.NotFound",
        ),
        (
            {"Action": "RunInstances", "MinCount": "1", "MaxCount": "1", "InstanceType": "t2.micro"},
            "InvalidParameterValue",
        ),
        ({"Action": "RunInstances", "MinCount": "1", "MaxCount": "1", "Category": "cache"}, "InvalidParameterValue"),
        (
            {
                "Action": "RunInstances",
                "MinCount": "1",
                "MaxCount": "1",
                "TagSpecification.1.ResourceType": "volume",
                "TagSpecification.1.Tag.1.Key": "a",
            },
            "InvalidParameterValue",
        ),
        (
            {
                "Action": "RunInstances",
                "MinCount": "1",
                "MaxCount": "1",
                "TagSpecification.1.ResourceType": "instance",
                "TagSpecification.1.Tag.1.Key": "adminvms:owner",
                "TagSpecification.1.Tag.1.Value": "x",
            },
            "InvalidParameterValue",
        ),
        (
            {
                "Action": "RunInstances",
                "MinCount": "1",
                "MaxCount": "1",
                "Category": "vsa",
                "TagSpecification.1.ResourceType": "instance",
                "TagSpecification.1.Tag.1.Key": "adminvms:category",
                "TagSpecification.1.Tag.1.Value": "standard",
            },
            "InvalidParameterCombination",
        ),
        (
            {"Action": "RunInstances", "MinCount": "1", "MaxCount": "1", "ClientToken": "x" * 65},
            "InvalidParameterValue",
        ),
        ({"Action": "TerminateInstances"}, "MissingParameter"),
        ({"Action": "DescribeImages", "Owner.1": "amazon"}, "InvalidParameterValue"),
        ({"Action": "DescribeInstanceTypes", "InstanceType.1": "t2.micro"}, "InvalidInstanceType"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_parameter_and_writes_nothing(ec2, demo, params, expected):
    params = dict(params)
    response = ec2(demo.alice)(params.pop("Action"), **params)
    assert 400 <= response.status_code < 500, response.content
    assert code(response) == expected, response.content
    assert Instance.objects.count() == 0


def test_a_body_that_is_not_utf8_or_has_too_many_parameters_is_a_400(demo):
    from tests.ec2_signing import send, signed_request

    credential, secret = tenancy_services.ec2_credential_create(user=demo.alice)
    many = {f"InstanceId.{n}": "i-" + "0" * 32 for n in range(1, 1200)}
    response = send(signed_request(credential.access, secret, {"Action": "DescribeInstances", **many}))
    assert (response.status_code, code(response)) == (400, "InvalidParameterValue")
    request = signed_request(credential.access, secret, {"Action": "DescribeRegions"})
    response = send(request, body=b"Action=Describe\xffRegions")
    assert 400 <= response.status_code < 500


def test_run_instances_fills_the_category_defaults_and_answers_the_reservation(ec2, demo):
    root = xml(ec2(demo.alice)("RunInstances", MinCount="2", MaxCount="2", Category="vsa"))
    assert root.tag == "RunInstancesResponse"
    assert root.find("reservationId").text.startswith("r-")
    assert root.find("ownerId").text == "acme"
    states = texts(root, "instancesSet/item/instanceState/name")
    assert states == ["pending", "pending"]
    rows = Instance.objects.filter(category__slug="vsa")
    assert rows.count() == 2 and {r.project for r in rows} == {demo.acme}
    assert {r.launch_request_id for r in rows} == {rows[0].launch_request_id}
    # The restricted view: a member reads no availability zone or host of an appliance.
    assert texts(root, "instancesSet/item/placement/availabilityZone") == ["", ""]


def test_the_same_client_token_returns_the_same_reservation(ec2, demo):
    call = ec2(demo.alice)
    first = xml(call("RunInstances", MinCount="1", MaxCount="1", ClientToken="token-1"))
    again = xml(call("RunInstances", MinCount="1", MaxCount="1", ClientToken="token-1"))
    assert again.find("reservationId").text == first.find("reservationId").text
    assert texts(again, "instancesSet/item/instanceId") == texts(first, "instancesSet/item/instanceId")
    assert Instance.objects.count() == 1
    other = call("RunInstances", MinCount="1", MaxCount="1", ClientToken="token-1", InstanceType="m1.large")
    assert (other.status_code, code(other)) == (400, "IdempotentParameterMismatch")
    # Another user's token is their own.
    xml(ec2(demo.admin)("RunInstances", MinCount="1", MaxCount="1", ClientToken="token-1", Project="acme"))
    assert Instance.objects.count() == 2


def test_as_many_as_the_quota_allows_between_min_and_max_count_are_launched(ec2, demo):
    vsa = demo.categories["vsa"]
    vsa.max_instances = 2
    vsa.save()
    call = ec2(demo.alice)
    asked = {"MinCount": "1", "MaxCount": "3", "Category": "vsa", "ClientToken": "fill-up"}
    root = xml(call("RunInstances", **asked))
    assert len(texts(root, "instancesSet/item/instanceId")) == 2
    # A retry of that request answers the same reservation, though MaxCount did not fit.
    again = xml(call("RunInstances", **asked))
    assert texts(again, "instancesSet/item/instanceId") == texts(root, "instancesSet/item/instanceId")
    response = call("RunInstances", MinCount="1", MaxCount="1", Category="vsa")
    assert (response.status_code, code(response)) == (400, "InstanceLimitExceeded")
    assert Instance.objects.filter(category=vsa).count() == 2


def test_describe_filters_by_category_state_tag_type_and_id(ec2, demo):
    standard, vsa = demo.categories["standard"], demo.categories["vsa"]
    web = InstanceFactory(
        project=demo.acme,
        category=standard,
        status=Status.ACTIVE,
        tags={"env": "prod"},
        flavor=demo.flavors["m1.small"],
    )
    db = InstanceFactory(project=demo.acme, category=standard, status=Status.STOPPED, tags={"env": "dev"})
    appliance = InstanceFactory(project=demo.acme, category=vsa, status=Status.ACTIVE)
    InstanceFactory(project=demo.globex, category=standard, status=Status.ACTIVE)
    call = ec2(demo.alice)

    def found(**params):
        return set(instance_ids(xml(call("DescribeInstances", **params))))

    def filtered(name, *values):
        return found(**{"Filter.1.Name": name, **{f"Filter.1.Value.{n}": v for n, v in enumerate(values, 1)}})

    # Rule 1: no category is the standard instances only (of the caller's project only).
    assert found() == {ec2_id(web), ec2_id(db)}
    assert filtered("category", "vsa") == {ec2_id(appliance)}
    assert filtered("category", "vsa", "standard") == {ec2_id(web), ec2_id(db), ec2_id(appliance)}
    assert found(Category="vsa") == {ec2_id(appliance)}
    assert filtered("instance-state-name", "stopped") == {ec2_id(db)}
    assert filtered("instance-state-code", "16") == {ec2_id(web)}
    assert filtered("tag:env", "prod") == {ec2_id(web)}
    assert filtered("tag-key", "env") == {ec2_id(web), ec2_id(db)}
    assert filtered("tag:Name", web.name) == {ec2_id(web)}
    assert filtered("instance-type", "m1.small") == {ec2_id(web)}
    assert filtered("instance-id", ec2_id(db)) == {ec2_id(db)}
    # Named by id, an instance of any category the caller sees is described (as GET /instances/{id}/ does).
    assert found(**{"InstanceId.1": ec2_id(appliance)}) == {ec2_id(appliance)}


def test_describe_pages_never_repeat_and_the_last_page_has_no_token(ec2, demo):
    made = {ec2_id(InstanceFactory(project=demo.acme, category=demo.categories["standard"])) for _ in range(12)}
    call = ec2(demo.alice)
    seen, token, pages = [], None, 0
    while True:
        root = xml(call("DescribeInstances", MaxResults="5", **({"NextToken": token} if token else {})))
        seen += instance_ids(root)
        pages += 1
        token = getattr(root.find("nextToken"), "text", None)
        if not token:
            break
        InstanceFactory(project=demo.globex, category=demo.categories["standard"])  # others' launches change nothing
    assert pages == 3 and len(seen) == len(set(seen)) == 12 and set(seen) == made
    other = xml(call("DescribeImages", MaxResults="5"))
    assert other.find("nextToken") is None
    images_token = xml(call("DescribeInstances", MaxResults="5")).find("nextToken").text
    assert code(call("DescribeImages", MaxResults="5", NextToken=images_token)) == "InvalidParameterValue"


def test_terminated_instances_show_for_a_while_then_no_more(ec2, demo, settings):
    from datetime import timedelta

    from django.utils import timezone

    recent = InstanceFactory(
        project=demo.acme,
        category=demo.categories["standard"],
        status=Status.DELETED,
        deleted_at=timezone.now() - timedelta(minutes=5),
    )
    InstanceFactory(
        project=demo.acme,
        category=demo.categories["standard"],
        status=Status.DELETED,
        deleted_at=timezone.now() - timedelta(hours=2),
    )
    root = xml(ec2(demo.alice)("DescribeInstances"))
    assert instance_ids(root) == [ec2_id(recent)]
    assert texts(root, "reservationSet/item/instancesSet/item/instanceState/code") == ["48"]


def test_an_error_reads_as_terminated_with_a_plain_reason_for_members(ec2, demo):
    broken = InstanceFactory(
        project=demo.acme,
        category=demo.categories["standard"],
        status=Status.ERROR,
        fault="nova: host compute-7 at 10.1.2.3 failed",
    )
    root = xml(ec2(demo.alice)("DescribeInstances", **{"InstanceId.1": ec2_id(broken)}))
    assert texts(root, ".//instanceState/name") == ["terminated"]
    [reason] = texts(root, ".//stateReason/message")
    assert "10.1.2.3" not in reason
    admin = xml(ec2(demo.admin)("DescribeInstances", **{"InstanceId.1": ec2_id(broken)}))
    assert "10.1.2.3" in texts(admin, ".//stateReason/message")[0]
    # It can still be terminated.
    gone = xml(ec2(demo.alice)("TerminateInstances", **{"InstanceId.1": ec2_id(broken)}))
    assert texts(gone, ".//currentState/name") == ["shutting-down"]


def test_acting_on_several_instances_is_all_or_nothing(ec2, demo):
    running = InstanceFactory(project=demo.acme, category=demo.categories["standard"], status=Status.ACTIVE)
    busy = InstanceFactory(
        project=demo.acme, category=demo.categories["standard"], status=Status.ACTIVE, task_state="rebooting"
    )
    response = ec2(demo.alice)("RebootInstances", **{"InstanceId.1": ec2_id(running), "InstanceId.2": ec2_id(busy)})
    assert (response.status_code, code(response)) == (400, "IncorrectInstanceState")
    running.refresh_from_db()
    assert running.task_state == "" and not running.actions.exists()


def test_a_member_cannot_see_or_touch_another_project_or_a_provider_instance(ec2, demo):
    theirs = InstanceFactory(project=demo.globex, category=demo.categories["standard"], status=Status.ACTIVE)
    lb = InstanceFactory(project=demo.acme, category=demo.categories["lb"], status=Status.ACTIVE)
    cache = InstanceFactory(project=demo.acme, category=demo.categories["cache"], status=Status.ACTIVE)
    call = ec2(demo.alice)
    for instance in (theirs, cache):
        for action in ("DescribeInstances", "TerminateInstances", "StopInstances", "RebootInstances"):
            response = call(action, **{"InstanceId.1": ec2_id(instance)})
            assert code(response) == "InvalidInstanceID.NotFound", (instance.category.slug, action)
    # lb is visible read-only: described, but members may not act on it.
    assert instance_ids(xml(call("DescribeInstances", Category="lb"))) == [ec2_id(lb)]
    response = call("TerminateInstances", **{"InstanceId.1": ec2_id(lb)})
    assert (response.status_code, code(response)) == (403, "UnauthorizedOperation")
    for instance in (theirs, lb, cache):
        instance.refresh_from_db()
        assert instance.status == Status.ACTIVE and not instance.actions.exists()
    assert code(call("RunInstances", MinCount="1", MaxCount="1", Category="lb")) == "UnauthorizedOperation"


def test_a_reader_describes_but_changes_nothing(ec2, demo):
    mine = InstanceFactory(project=demo.acme, category=demo.categories["standard"], status=Status.ACTIVE)
    call = ec2(demo.rita)
    assert instance_ids(xml(call("DescribeInstances"))) == [ec2_id(mine)]
    assert code(call("RebootInstances", **{"InstanceId.1": ec2_id(mine)})) == "UnauthorizedOperation"
    assert code(call("RunInstances", MinCount="1", MaxCount="1")) == "UnauthorizedOperation"


def test_projects_a_key_may_act_for(ec2, demo):
    # A member's key acts for its project only.
    response = ec2(demo.alice)("RunInstances", MinCount="1", MaxCount="1", Project="globex")
    assert code(response) == "InvalidParameterValue"
    # A provider admin names the project: the parameter or the adminvms:project tag.
    admin = ec2(demo.admin)
    assert code(admin("RunInstances", MinCount="1", MaxCount="1")) == "InvalidParameterValue"
    xml(admin("RunInstances", MinCount="1", MaxCount="1", Project="globex"))
    xml(
        admin(
            "RunInstances",
            MinCount="1",
            MaxCount="1",
            **{
                "TagSpecification.1.ResourceType": "instance",
                "TagSpecification.1.Tag.1.Key": "adminvms:project",
                "TagSpecification.1.Tag.1.Value": "acme",
            },
        )
    )
    assert sorted(i.project.slug for i in Instance.objects.all()) == ["acme", "globex"]
    assert len(instance_ids(xml(admin("DescribeInstances", Project="globex")))) == 1
    assert len(instance_ids(xml(admin("DescribeInstances")))) == 2


def test_images_types_account_regions_and_zones(ec2, demo):
    call = ec2(demo.alice)
    images = xml(call("DescribeImages", **{"Filter.1.Name": "category", "Filter.1.Value.1": "vsa"}))
    names = texts(images, "imagesSet/item/name")
    assert names and all(demo.images[n].categories.filter(slug="vsa").exists() for n in names)
    assert all(i.startswith("ami-") for i in texts(images, "imagesSet/item/imageId"))
    everything = texts(xml(ec2(demo.admin)("DescribeImages")), "imagesSet/item/name")
    hidden = [n for n in everything if demo.images[n].categories.filter(slug="cache").exists()]
    assert hidden and not set(hidden) & set(texts(xml(call("DescribeImages")), "imagesSet/item/name"))

    types = xml(call("DescribeInstanceTypes"))
    assert set(texts(types, "instanceTypeSet/item/instanceType")) == set(
        Flavor.objects.filter(is_active=True).values_list("name", flat=True)
    )
    small = xml(call("DescribeInstanceTypes", **{"InstanceType.1": "m1.small"}))
    assert texts(small, "instanceTypeSet/item/memoryInfo/sizeInMiB") == [str(demo.flavors["m1.small"].ram_mb)]

    account = xml(call("DescribeAccountAttributes"))
    assert texts(account, "accountAttributeSet/item/attributeName") == ["supported-platforms", "default-vpc"]
    assert texts(account, "accountAttributeSet/item/attributeValueSet/item/attributeValue")[0] == "EC2"
    assert texts(xml(call("DescribeRegions")), "regionInfo/item/regionName") == ["RegionOne"]
    assert texts(xml(call("DescribeAvailabilityZones")), "availabilityZoneInfo/item/zoneName") == ["nova"]


def test_the_category_parameter_narrows_what_instance_ids_reach(ec2, demo):
    appliance = InstanceFactory(project=demo.acme, category=demo.categories["vsa"], status=Status.ACTIVE)
    call = ec2(demo.alice)
    response = call("TerminateInstances", Category="standard", **{"InstanceId.1": ec2_id(appliance)})
    assert code(response) == "InvalidInstanceID.NotFound"
    appliance.refresh_from_db()
    assert appliance.status == Status.ACTIVE
    xml(call("TerminateInstances", Category="vsa", **{"InstanceId.1": ec2_id(appliance)}))
    appliance.refresh_from_db()
    assert appliance.status == Status.DELETING


@pytest.mark.parametrize(
    "params",
    [
        {"InstanceId.\u00b2": "i-" + "0" * 32},
        {"Filter." + "1" * 5000 + ".Name": "category"},
        {"InstanceId": "i-" + "0" * 32},
        {"Filter.1.Name": "tag:\x07", "Filter.1.Value.1": "\x1b[31m"},
        {"Filter.1.Name": "bad\x07filter", "Filter.1.Value.1": "x"},
    ],
)
def test_odd_parameters_are_a_clear_4xx_in_a_document_clients_parse(ec2, demo, params):
    from botocore.parsers import EC2QueryParser

    response = ec2(demo.alice)("DescribeInstances", **params)
    if response.status_code == 200:
        return  # a tag filter that matches nothing is fine
    assert 400 <= response.status_code < 500, response.content
    parsed = EC2QueryParser().parse(
        {"body": response.content, "headers": dict(response.items()), "status_code": response.status_code}, None
    )
    assert parsed["Error"]["Code"] in ("InvalidParameterValue", "MissingParameter")


def test_wildcard_image_names_on_this_database(ec2, demo):
    names = texts(
        xml(ec2(demo.alice)("DescribeImages", **{"Filter.1.Name": "name", "Filter.1.Value.1": "*a*"})),
        "imagesSet/item/name",
    )
    assert names and all("a" in n for n in names)
    one = xml(ec2(demo.alice)("DescribeImages", **{"Filter.1.Name": "name", "Filter.1.Value.1": "vs?-app*.("}))
    assert texts(one, "imagesSet/item/name") == []


def test_the_name_tag_of_several_instances_finds_them_all(ec2, demo):
    call = ec2(demo.alice)
    xml(
        call(
            "RunInstances",
            MinCount="2",
            MaxCount="2",
            **{
                "TagSpecification.1.ResourceType": "instance",
                "TagSpecification.1.Tag.1.Key": "Name",
                "TagSpecification.1.Tag.1.Value": "web",
            },
        )
    )
    assert sorted(Instance.objects.values_list("name", flat=True)) == ["web-1", "web-2"]
    found = xml(call("DescribeInstances", **{"Filter.1.Name": "tag:Name", "Filter.1.Value.1": "web"}))
    assert len(instance_ids(found)) == 2
    assert set(texts(found, ".//tagSet/item[key='Name']/value")) == {"web"}


def test_an_instance_terminated_long_ago_is_unknown(ec2, demo):
    from datetime import timedelta

    from django.utils import timezone

    old = InstanceFactory(
        project=demo.acme,
        category=demo.categories["standard"],
        status=Status.DELETED,
        deleted_at=timezone.now() - timedelta(hours=2),
    )
    response = ec2(demo.alice)("DescribeInstances", **{"InstanceId.1": ec2_id(old)})
    assert code(response) == "InvalidInstanceID.NotFound"


def test_a_projects_key_sees_that_projects_images_only_and_dies_with_the_membership(ec2, demo):
    from categories.models import Image
    from tenancy.models import Membership
    from tenancy.services import membership_ensure

    membership_ensure(user=demo.alice, project=demo.globex)
    private = Image.objects.create(name="globex-private", project=demo.globex)
    alice = type(demo.alice).objects.get(pk=demo.alice.pk)
    acme_key = ec2(alice, project=demo.acme)
    globex_key = ec2(alice, project=demo.globex)
    assert "globex-private" not in texts(xml(acme_key("DescribeImages")), "imagesSet/item/name")
    assert texts(xml(globex_key("DescribeImages", **{"Owner.1": "self"})), "imagesSet/item/name") == [private.name]
    Membership.objects.filter(user=alice, project=demo.globex).delete()
    assert code(globex_key("DescribeImages")) == "AuthFailure"
    assert xml(acme_key("DescribeImages")) is not None


def test_fuzzed_requests_never_answer_5xx_and_always_parse(demo):
    """Hypothesis sends signed requests of every action with parameters from EC2's vocabulary and odd values."""
    from botocore.parsers import EC2QueryParser
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from instances.ec2.actions import ACTIONS

    credential, secret = tenancy_services.ec2_credential_create(user=demo.alice)
    keys = st.sampled_from(
        [
            "InstanceId.1",
            "InstanceId.2",
            "ImageId",
            "ImageId.1",
            "InstanceType",
            "InstanceType.1",
            "MinCount",
            "MaxCount",
            "ClientToken",
            "Category",
            "Project",
            "MaxResults",
            "NextToken",
            "Filter.1.Name",
            "Filter.1.Value.1",
            "Filter.2.Name",
            "Filter.2.Value.1",
            "TagSpecification.1.ResourceType",
            "TagSpecification.1.Tag.1.Key",
            "TagSpecification.1.Tag.1.Value",
            "Owner.1",
            "AttributeName.1",
            "RegionName.1",
            "ZoneName.1",
            "Force",
            "Hibernate",
            "DryRun",
            "Filter.1",
            "InstanceId.0",
        ]
    )
    values = st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            [
                "1",
                "5",
                "0",
                "-1",
                "99999999999999999999",
                "true",
                "standard",
                "vsa",
                "cache",
                "acme",
                "globex",
                "m1.small",
                "instance",
                "category",
                "tag:env",
                "instance-state-name",
                "running",
                "i-" + "0" * 32,
                "ami-" + "f" * 32,
                "*",
                "?",
            ]
        ),
    )

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(action=st.sampled_from([*ACTIONS, "Nope"]), params=st.dictionaries(keys, values, max_size=6))
    def check(action, params):
        response = call(credential.access, secret, action, **params)
        assert response.status_code < 500, response.content
        parsed = EC2QueryParser().parse(
            {"body": response.content, "headers": dict(response.items()), "status_code": response.status_code}, None
        )
        assert (response.status_code == 200) == ("Error" not in parsed), response.content

    check()
