"""factory-boy factories shared by every app's tests."""

import factory
from django.contrib.auth import get_user_model

from categories.models import Flavor, Image, InstanceCategory
from instances.choices import Status
from instances.models import Instance
from tenancy.models import Project


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"project{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())


class FlavorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Flavor
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"f{n}.size")
    vcpus = 1
    ram_mb = 1024
    disk_gb = 10


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    name = factory.Sequence(lambda n: f"image-{n}")
    kind = "vm"


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InstanceCategory
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"cat{n}")
    name = factory.LazyAttribute(lambda o: o.slug.title())
    user_operations = factory.LazyFunction(lambda: ["launch", "reboot", "stop", "start", "terminate"])


class InstanceFactory(factory.django.DjangoModelFactory):
    """An instance row as if a launch had finished (no backend server behind it)."""

    class Meta:
        model = Instance

    name = factory.Sequence(lambda n: f"vm-{n}")
    category = factory.LazyFunction(lambda: InstanceCategory.objects.get(slug="standard"))
    project = factory.SubFactory(ProjectFactory)
    status = Status.ACTIVE
    backend = "sim"
