"""`config` as an installed app: the top of the stack, home of the operational management commands."""

from django.apps import AppConfig


class ProjectConfig(AppConfig):
    # Layer 5: it may import every app (run_embedded, load_demo_data); no app imports it back except
    # for settings, queues and the beat registry. It has no models.
    name = "config"
    label = "config"
    verbose_name = "Project configuration"

    def ready(self) -> None:
        from django.conf import settings
        from django.contrib import admin

        from config.metrics import delivery_metrics_register

        delivery_metrics_register()  # served at /metrics by django_prometheus

        # The admin is the marketer's UI for now: it carries the product's name, not Django's.
        admin.site.site_header = f"{settings.APP_NAME} administration"
        admin.site.site_title = settings.APP_NAME
        admin.site.index_title = "Workspaces, subscribers and sequences"
