from django.urls import path

from . import views

urlpatterns = [
    path("", views.access_keys, name="portal-keys"),
    path("<str:access>/revoke/", views.access_key_revoke, name="portal-key-revoke"),
]
