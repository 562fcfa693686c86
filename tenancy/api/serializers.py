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


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenIssuedSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`; shown only this once.")
    token_key = serializers.CharField(help_text="The token's first characters: its name in the list.")
    expiry = serializers.DateTimeField()


class TokenSerializer(serializers.Serializer):
    token_key = serializers.CharField()
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField()
    current = serializers.SerializerMethodField(help_text="The token this request came with.")

    def get_current(self, token) -> bool:
        auth = self.context["request"].auth
        return getattr(auth, "token_key", None) == token.token_key
