"""Channel-layer group names: one group per workspace and socket type, one per campaign being watched."""

from __future__ import annotations

DASHBOARD = "dashboard"
EVENTS = "events"
CAMPAIGN = "campaign"
TYPES = (DASHBOARD, EVENTS, CAMPAIGN)


def group_name(workspace_id: int, kind: str) -> str:
    # Group names allow only ASCII letters, digits, hyphens, underscores and periods.
    return f"rt.ws{int(workspace_id)}.{kind}"


def campaign_group_name(workspace_id: int, campaign_id: int) -> str:
    return f"rt.ws{int(workspace_id)}.campaign.{int(campaign_id)}"
