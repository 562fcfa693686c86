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


class Ec2CredentialSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="The access key id: `aws_access_key_id`.")
    project = serializers.CharField(
        source="project.slug",
        default=None,
        allow_null=True,
        help_text="The slug of the project its requests act for; null: named per request (provider admins).",
    )
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class Ec2CredentialRequestSerializer(serializers.Serializer):
    project = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Project.objects.none(),
        required=False,
        allow_null=True,
        help_text="The project the key acts for; default: your only project.",
        error_messages={"does_not_exist": "Unknown project '{value}'."},
    )

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        user = getattr(request, "user", None)
        fields["project"].queryset = Project.objects.filter(policy.projects_q(user)) if user else Project.objects.none()
        return fields


class Ec2CredentialIssuedSerializer(Ec2CredentialSerializer):
    secret = serializers.CharField(help_text="The secret access key: `aws_secret_access_key`; shown only this once.")
