"""The marketer UI under /app/."""

from django.contrib.auth import views as auth_views
from django.urls import path

from ui import views, views_templates

app_name = "ui"

urlpatterns = [
    path("login/", views.login, name="login"),
    # next_page here, not LOGOUT_REDIRECT_URL: the admin's own logout keeps its page.
    path("logout/", auth_views.LogoutView.as_view(next_page="ui:login"), name="logout"),
    path("workspace/", views.switch_workspace, name="switch-workspace"),
    path("", views.dashboard, name="dashboard"),
    path("subscribers/", views.subscriber_list, name="subscribers"),
    path("subscribers/export.csv", views.subscriber_export, name="subscribers-export"),
    path("subscribers/<int:subscriber_id>/", views.subscriber_detail, name="subscriber"),
    path("subscribers/import/", views.import_create, name="import"),
    path("subscribers/imports/<int:import_id>/", views.import_detail, name="import-detail"),
    path("subscribers/imports/<int:import_id>/progress", views.import_progress, name="import-progress"),
    path("subscribers/imports/<int:import_id>/errors.csv", views.import_errors, name="import-errors"),
    path("sequences/", views.sequence_list, name="sequences"),
    path("sequences/<int:sequence_id>/<slug:action>", views.sequence_action, name="sequence-action"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/api-keys/", views.api_key_create, name="api-key-create"),
    path("settings/api-keys/<int:key_id>/revoke", views.api_key_revoke, name="api-key-revoke"),
    # Template editor (ui/views_templates.py)
    path("templates/", views_templates.template_list, name="templates"),
    path("templates/new/", views_templates.template_new, name="template-new"),
    path("templates/<int:template_id>/", views_templates.template_edit, name="template-edit"),
    path("templates/<int:template_id>/preview", views_templates.template_preview, name="template-preview"),
    path("templates/<int:template_id>/test", views_templates.template_test_send, name="template-test"),
]
