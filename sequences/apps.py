from django.apps import AppConfig


class SequencesConfig(AppConfig):
    name = "sequences"

    def ready(self) -> None:
        from anymail.signals import tracking

        from accounts.services import workspace_sending_resumed_handler_register
        from sequences.campaigns import campaigns_using_segment
        from sequences.delivery.guardrail import messages_requeue_after_resume
        from sequences.delivery.tasks import messages_enqueue
        from sequences.optin import optin_events_handler
        from sequences.scheduler import on_messages_created
        from sequences.services import enrollments_goal_check
        from sequences.webhooks import tracking_receive
        from subscribers.segments import segment_usage_register
        from subscribers.services import event_handler_register

        event_handler_register(enrollments_goal_check)
        event_handler_register(optin_events_handler)
        segment_usage_register(campaigns_using_segment)
        tracking.connect(tracking_receive, dispatch_uid="sequences.webhooks.tracking_receive")
        workspace_sending_resumed_handler_register(messages_requeue_after_resume)
        on_messages_created(messages_enqueue)
