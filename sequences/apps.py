from django.apps import AppConfig


class SequencesConfig(AppConfig):
    name = "sequences"

    def ready(self) -> None:
        from sequences.services import enrollments_goal_check
        from subscribers.services import event_handler_register

        event_handler_register(enrollments_goal_check)
