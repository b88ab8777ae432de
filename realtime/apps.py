from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from realtime.publish import campaign_progress_push, realtime_events_handler
        from sequences.campaigns import campaign_status_handler_register
        from subscribers.services import event_handler_register

        event_handler_register(realtime_events_handler)  # counters and coalesced pushes from the event log
        campaign_status_handler_register(campaign_progress_push)  # status changes send no event
