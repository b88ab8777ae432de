from django.urls import path

from realtime import views as pages
from realtime.api import views

urlpatterns = [
    path("ws/dashboard", pages.DashboardPageView.as_view(), name="realtime-dashboard"),
    path("ws/stats", views.LiveStatsView.as_view(), name="realtime-stats"),
    path("ws/broadcast", views.BroadcastView.as_view(), name="realtime-broadcast"),
    path("ws/event", views.LiveEventView.as_view(), name="realtime-event"),
]
