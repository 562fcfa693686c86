from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from adminvms_dashboard.api import SLUG_PATTERN
from adminvms_dashboard.schema import conflict
from tenancy import policy, services
from tenancy.models import Ec2Credential, Membership, Project

from .serializers import (
    Ec2CredentialIssuedSerializer,
    Ec2CredentialRequestSerializer,
    Ec2CredentialSerializer,
    MeSerializer,
    ProjectSerializer,
    TokenIssuedSerializer,
    TokenRequestSerializer,
    TokenSerializer,
)


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """Projects the caller belongs to (every project, for provider admins)."""

    serializer_class = ProjectSerializer
    lookup_field = "slug"
    lookup_value_regex = SLUG_PATTERN  # what a SlugField holds; anything else is a 404, not a DB error
    filterset_fields = ["slug"]

    def get_queryset(self):
        return Project.objects.filter(policy.projects_q(self.request.user))


class MeView(APIView):
    """Who the caller is: provider admin or not, and their project roles."""

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        memberships = Membership.objects.filter(user=request.user).select_related("project")
        return Response(
            {
                "username": request.user.get_username(),
                "is_provider_admin": policy.is_provider_admin(request.user),
                "memberships": [{"project": m.project.slug, "role": m.role} for m in memberships],
            }
        )


class TokenView(APIView):
    """Sign in for the API: ``username`` and ``password`` give a token that expires."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: TokenIssuedSerializer,
            429: OpenApiResponse(description="Too many failed sign-ins from this address or for this user."),
        },
    )
    def post(self, request):
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record, token = services.token_issue(request=request, **body.validated_data)
        return Response({"token": token, "token_key": record.token_key, "expiry": record.expiry})


class TokenViewSet(mixins.ListModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The caller's own API tokens: list them (never their secrets), revoke one."""

    serializer_class = TokenSerializer
    lookup_field = "token_key"
    lookup_value_regex = "[A-Za-z0-9_-]+"
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator asks without a user
            return AuthToken.objects.none()
        return services.token_list(user=self.request.user)

    def destroy(self, request, *args, **kwargs):
        services.token_revoke(user=request.user, token_key=kwargs["token_key"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class Ec2CredentialViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """The caller's EC2 access keys for the EC2-compatible API at ``/ec2/`` (named as Keystone's EC2
    credentials are): list them (never their secrets), create one (the secret is answered only then),
    revoke one."""

    serializer_class = Ec2CredentialSerializer
    lookup_field = "access"
    lookup_value_regex = "[A-Za-z0-9]+"
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator asks without a user
            return Ec2Credential.objects.none()
        return services.ec2_credential_list(user=self.request.user)

    @extend_schema(
        request=Ec2CredentialRequestSerializer,
        responses={201: Ec2CredentialIssuedSerializer, 409: conflict("You hold the most access keys allowed.")},
    )
    def create(self, request, *args, **kwargs):
        body = Ec2CredentialRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        credential, secret = services.ec2_credential_create(user=request.user, **body.validated_data)
        data = {**Ec2CredentialSerializer(credential).data, "secret": secret}
        return Response(data, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})

    def destroy(self, request, *args, **kwargs):
        services.ec2_credential_revoke(user=request.user, access=kwargs["access"])
        return Response(status=status.HTTP_204_NO_CONTENT)
