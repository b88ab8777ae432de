from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_beat_schedules(**_: object) -> None:
    from config.schedules import schedules_sync

    schedules_sync()


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and workspaces"

    def ready(self) -> None:
        # The beat registry in config.schedules is stored after every migrate, so a fresh database
        # and a deploy both get the current schedules without a separate step.
        post_migrate.connect(_sync_beat_schedules, sender=self, dispatch_uid="es-sync-beat-schedules")
