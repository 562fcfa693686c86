from django.apps import AppConfig


class CategoriesConfig(AppConfig):
    name = "categories"
    verbose_name = "Instance categories"
