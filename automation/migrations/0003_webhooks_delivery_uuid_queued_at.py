"""Deliveries get a public uuid (the payload's id, the same on every retry) and a queued_at mark (the
tick does not hand out a delivery whose task may still wait in the queue)."""

import uuid

from django.db import migrations, models


def uuids_fill(apps, schema_editor):
    # A callable default is evaluated once for existing rows: give each row its own uuid.
    WebhookDelivery = apps.get_model("automation", "WebhookDelivery")
    for delivery in WebhookDelivery.objects.filter(uuid__isnull=True).only("pk").iterator():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(uuid=uuid.uuid4())


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0002_workflow_trigger_state"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="uuid",
            field=models.UUIDField(editable=False, null=True),
        ),
        migrations.RunPython(uuids_fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="webhookdelivery",
            name="uuid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="queued_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
