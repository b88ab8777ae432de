from django.apps import AppConfig


class SequencesConfig(AppConfig):
    name = "sequences"

    def ready(self) -> None:
        from sequences.services import enrollments_goal_check
        from subscribers.services import event_handler_register

        event_handler_register(enrollments_goal_check)

        from anymail.signals import tracking

        from sequences.optin import optin_events_handler
        from sequences.webhooks import tracking_receive

        event_handler_register(optin_events_handler)
        tracking.connect(tracking_receive, dispatch_uid="sequences.webhooks.tracking_receive")

        from sequences.delivery.tasks import messages_enqueue

        try:
            from sequences.scheduler import on_messages_created
        except ImportError:  # the scheduler not there yet: the delivery tick sends queued messages
            pass
        else:
            on_messages_created(messages_enqueue)
