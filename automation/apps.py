from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"

    def ready(self) -> None:
        from automation.matching import workflows_events_handler
        from automation.outgoing import webhooks_events_handler
        from automation.selectors import workflow_segment_usage
        from subscribers.segments import segment_usage_register
        from subscribers.services import event_handler_register

        event_handler_register(workflows_events_handler)
        event_handler_register(webhooks_events_handler)
        segment_usage_register(workflow_segment_usage)  # a segment a workflow uses cannot be deleted
