from django.apps import AppConfig


class SequencesConfig(AppConfig):
    name = "sequences"

    def ready(self) -> None:
        from sequences.services import enrollments_goal_check
        from subscribers.services import event_handler_register

        event_handler_register(enrollments_goal_check)

        from accounts.services import workspace_sending_resumed_handler_register
        from sequences.delivery.guardrail import messages_requeue_after_resume

        workspace_sending_resumed_handler_register(messages_requeue_after_resume)

        from sequences.delivery.tasks import messages_enqueue

        try:
            from sequences.scheduler import on_messages_created
        except ImportError:  # the scheduler not there yet: the delivery tick sends queued messages
            pass
        else:
            on_messages_created(messages_enqueue)
