from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from instances.ec2.views import endpoint as ec2_endpoint

urlpatterns = [
    path("api/v1/", include("adminvms_dashboard.api_router")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the dashboard's CSP runs no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    # The EC2-compatible query API (SigV4); clients name it with its slash or without.
    path("ec2/", ec2_endpoint, name="ec2"),
    path("ec2", ec2_endpoint),
    path("api-auth/", include("rest_framework.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("console/", include("categories.urls")),
    path("admin/", admin.site.urls),
    path("portal/keys/", include("tenancy.urls")),
    path("", include("instances.urls")),
]

handler404 = "adminvms_dashboard.api.not_found"
