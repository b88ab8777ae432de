from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"

    def ready(self) -> None:
        from automation.matching import workflows_events_handler
        from automation.outgoing import webhooks_events_handler
        from subscribers.services import event_handler_register

        event_handler_register(workflows_events_handler)
        event_handler_register(webhooks_events_handler)
