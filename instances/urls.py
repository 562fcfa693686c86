from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("project/", views.switch_project, name="switch-project"),
    path("launch/", views.launch, name="launch"),
    path("instances/<uuid:instance_id>/row/", views.instance_row, name="instance-row"),
    path("instances/<uuid:instance_id>/timeline/", views.instance_timeline, name="instance-timeline"),
    path("instances/<uuid:instance_id>/<str:op>/", views.instance_action, name="instance-action"),
    path("console/", views.console_overview, name="console"),
    path("console/instances/", views.console_instances, name="console-instances"),
    path("console/adoption/", views.console_adoption, name="console-adoption"),
    path("console/rollouts/", views.console_rollouts, name="console-rollouts"),
    path("console/rollouts/<uuid:rollout_id>/row/", views.console_rollout_row, name="console-rollout-row"),
    path("console/rollouts/<uuid:rollout_id>/<str:verb>/", views.console_rollout_verb, name="console-rollout-verb"),
    path("console/heal-breakers/<int:breaker_id>/resume/", views.console_breaker_resume, name="console-breaker-resume"),
    path(
        "console/volumes/<uuid:volume_id>/categories/",
        views.console_volume_categories,
        name="console-volume-categories",
    ),
    path("console/images/<uuid:image_id>/categories/", views.console_image_categories, name="console-image-categories"),
    path("console/instances/<uuid:instance_id>/", views.console_instance, name="console-instance"),
    path("portal/", views.portal, name="portal"),
    path("portal/instances/<uuid:instance_id>/", views.portal_instance, name="portal-instance"),
    path("portal/appliances/", views.portal_appliances, name="portal-appliances"),
    path("portal/appliances/<uuid:instance_id>/", views.appliance_detail, name="portal-appliance"),
    path("portal/appliances/<uuid:instance_id>/gui/", views.appliance_gui, name="portal-appliance-gui"),
]
