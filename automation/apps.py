from django.apps import AppConfig


class AutomationConfig(AppConfig):
    name = "automation"

    def ready(self) -> None:
        from automation.matching import workflows_events_handler
        from automation.outgoing import webhooks_events_handler
        from subscribers.services import event_handler_register

        event_handler_register(workflows_events_handler)
        event_handler_register(webhooks_events_handler)

        from subscribers import segments

        # The segment in-use registry comes with the saved-segment work; until it is there, nothing to do.
        usage_register = getattr(segments, "segment_usage_register", None)
        if usage_register is not None:
            from automation.selectors import workflow_segment_usage

            usage_register(workflow_segment_usage)
