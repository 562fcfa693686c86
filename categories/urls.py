from django.urls import path

from . import views

urlpatterns = [
    path("categories/", views.category_list, name="console-categories"),
    path("categories/new/", views.category_edit, name="console-category-new"),
    path("categories/<slug:slug>/", views.category_edit, name="console-category"),
    path("categories/<slug:slug>/deactivate/", views.category_deactivate, name="console-category-deactivate"),
    path("categories/<slug:slug>/delete/", views.category_delete, name="console-category-delete"),
    path("flavors/", views.flavor_list, name="console-flavors"),
    path("images/", views.image_list, name="console-images"),
    path("volumes/", views.volume_list, name="console-volumes"),
]
