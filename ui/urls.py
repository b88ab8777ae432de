"""The marketer UI under /app/."""

from django.contrib.auth import views as auth_views
from django.urls import path

from ui import (
    views,
    views_audience,
    views_builder,
    views_campaigns,
    views_enroll,
    views_outbox,
    views_profile,
    views_segments,
    views_settings,
    views_templates,
    views_workflow_runs,
    views_workflows,
)

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
    # The local outbox
    path("outbox/", views_outbox.outbox_list, name="outbox"),
    path("outbox/<int:email_id>/", views_outbox.outbox_detail, name="outbox-email"),
    path("outbox/<int:email_id>/html", views_outbox.outbox_html, name="outbox-email-html"),
    # Sequence builder and dry run (ui/views_builder.py)
    path("sequences/new/", views_builder.sequence_new, name="sequence-new"),
    path("sequences/<int:sequence_id>/edit/", views_builder.sequence_edit, name="sequence-edit"),
    path("sequences/<int:sequence_id>/steps/", views_builder.step_add, name="step-add"),
    path("sequences/<int:sequence_id>/steps/<int:step_id>/", views_builder.step_save, name="step-save"),
    path("sequences/<int:sequence_id>/steps/<int:step_id>/delete", views_builder.step_remove, name="step-delete"),
    path(
        "sequences/<int:sequence_id>/steps/<int:step_id>/move/<slug:direction>",
        views_builder.step_move,
        name="step-move",
    ),
    path("sequences/<int:sequence_id>/dry-run/", views_builder.sequence_dry_run_page, name="sequence-dry-run"),
    path("sequences/<int:sequence_id>/enroll/", views_enroll.sequence_enroll_page, name="sequence-enroll"),
    # Template editor (ui/views_templates.py)
    path("templates/", views_templates.template_list, name="templates"),
    path("templates/new/", views_templates.template_new, name="template-new"),
    path("templates/<int:template_id>/", views_templates.template_edit, name="template-edit"),
    path("templates/<int:template_id>/preview", views_templates.template_preview, name="template-preview"),
    path("templates/<int:template_id>/test", views_templates.template_test_send, name="template-test"),
    # Lists, tags, custom fields and profile editing (ui/views_audience.py, ui/views_profile.py)
    path("lists/", views_audience.list_index, name="lists"),
    path("lists/<int:list_id>/", views_audience.list_edit, name="list-edit"),
    path("lists/<int:list_id>/delete", views_audience.list_delete, name="list-delete"),
    path("tags/", views_audience.tag_index, name="tags"),
    path("tags/<int:tag_id>/", views_audience.tag_rename, name="tag-rename"),
    path("tags/<int:tag_id>/delete", views_audience.tag_delete, name="tag-delete"),
    path("fields/", views_audience.field_index, name="fields"),
    path("fields/<int:field_id>/", views_audience.field_edit, name="field-edit"),
    path("fields/<int:field_id>/delete", views_audience.field_delete, name="field-delete"),
    path("subscribers/new/", views_profile.subscriber_new, name="subscriber-new"),
    path("subscribers/<int:subscriber_id>/edit/", views_profile.subscriber_edit, name="subscriber-edit"),
    path("subscribers/<int:subscriber_id>/lists/", views_profile.subscriber_list_add, name="subscriber-list-add"),
    path(
        "subscribers/<int:subscriber_id>/lists/<int:list_id>/remove",
        views_profile.subscriber_list_remove,
        name="subscriber-list-remove",
    ),
    path("subscribers/<int:subscriber_id>/tags/", views_profile.subscriber_tag_add, name="subscriber-tag-add"),
    path(
        "subscribers/<int:subscriber_id>/tags/<int:tag_id>/remove",
        views_profile.subscriber_tag_remove,
        name="subscriber-tag-remove",
    ),
    path(
        "subscribers/<int:subscriber_id>/unsubscribe",
        views_profile.subscriber_unsubscribe,
        name="subscriber-unsubscribe",
    ),
    path("subscribers/<int:subscriber_id>/delete/", views_profile.subscriber_delete, name="subscriber-delete"),
    # Settings: webhooks and members (ui/views_settings.py); the live preview of unsaved template edits
    # (ui/views_templates.py)
    path("settings/webhooks/new/", views_settings.webhook_new, name="webhook-new"),
    path("settings/webhooks/<int:endpoint_id>/", views_settings.webhook_detail, name="webhook"),
    path("settings/webhooks/<int:endpoint_id>/rotate-secret", views_settings.webhook_rotate, name="webhook-rotate"),
    path("settings/webhooks/<int:endpoint_id>/delete", views_settings.webhook_delete, name="webhook-delete"),
    path(
        "settings/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/retry",
        views_settings.webhook_delivery_retry,
        name="webhook-delivery-retry",
    ),
    path("settings/webhooks/<int:endpoint_id>/<slug:action>", views_settings.webhook_action, name="webhook-action"),
    path("settings/members/", views_settings.members, name="members"),
    path("settings/members/<int:membership_id>/role", views_settings.member_role, name="member-role"),
    path("settings/members/<int:membership_id>/remove", views_settings.member_remove, name="member-remove"),
    path("templates/preview/", views_templates.template_live_preview, name="template-live-preview"),
    path(
        "templates/preview/<slug:preview_key>",
        views_templates.template_live_preview_document,
        name="template-live-preview-document",
    ),
    # Segment builder (ui/views_segments.py)
    path("segments/", views_segments.segment_list, name="segments"),
    path("segments/new/", views_segments.segment_new, name="segment-new"),
    path("segments/<int:segment_id>/", views_segments.segment_edit, name="segment-edit"),
    path("segments/<int:segment_id>/delete", views_segments.segment_remove, name="segment-delete"),
    path("segments/preview", views_segments.segment_preview, name="segment-preview"),
    path("segments/editor", views_segments.segment_editor, name="segment-editor"),
    path("segments/row", views_segments.segment_row, name="segment-row"),
    path("segments/group", views_segments.segment_group, name="segment-group"),
    # Workflows: list, editor, actions as JSON, run log (ui/views_workflows.py, ui/views_workflow_runs.py)
    path("workflows/", views_workflows.workflow_list, name="workflows"),
    path("workflows/new/", views_workflows.workflow_new, name="workflow-new"),
    path("workflows/<int:workflow_id>/", views_workflows.workflow_edit, name="workflow"),
    path("workflows/<int:workflow_id>/actions/", views_workflows.workflow_actions_json, name="workflow-actions-json"),
    path("workflows/<int:workflow_id>/delete", views_workflows.workflow_remove, name="workflow-delete"),
    path("workflows/<int:workflow_id>/runs/", views_workflow_runs.workflow_runs, name="workflow-runs"),
    path("workflows/<int:workflow_id>/<slug:action>", views_workflows.workflow_action, name="workflow-action"),
    path("workflows/runs/<int:run_id>/", views_workflow_runs.workflow_run_detail, name="workflow-run"),
    path(
        "workflows/runs/<int:run_id>/<slug:action>", views_workflow_runs.workflow_run_action, name="workflow-run-action"
    ),
    # Campaigns (ui/views_campaigns.py)
    path("campaigns/", views_campaigns.campaign_list, name="campaigns"),
    path("campaigns/new/", views_campaigns.campaign_new, name="campaign-new"),
    path("campaigns/estimate", views_campaigns.campaign_estimate, name="campaign-estimate"),
    path("campaigns/<int:campaign_id>/", views_campaigns.campaign_detail, name="campaign"),
    path("campaigns/<int:campaign_id>/edit/", views_campaigns.campaign_edit, name="campaign-edit"),
    path("campaigns/<int:campaign_id>/<slug:action>", views_campaigns.campaign_action, name="campaign-action"),
]
