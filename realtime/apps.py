from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from realtime.publish import realtime_events_handler
        from subscribers.services import event_handler_register

        event_handler_register(realtime_events_handler)  # counters and coalesced pushes from the event log
