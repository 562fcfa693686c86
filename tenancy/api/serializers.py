from rest_framework import serializers

from tenancy import policy
from tenancy.models import Project


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = ["id", "slug", "name", "description", "role", "created_at"]

    def get_role(self, project) -> str | None:
        user = self.context["request"].user
        return policy.role_in(user, project) or ("admin" if policy.is_provider_admin(user) else None)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_provider_admin = serializers.BooleanField()
    memberships = serializers.ListField(child=serializers.DictField())
