"""The live sockets: /api/v1/ws/connect/<dashboard|events|campaign>, one workspace's group each.

Close codes (sent after accepting, so browsers see them): 4401 not authenticated, 4403 not a member of
the workspace (or no workspace named while the user has several), 4404 campaign not found in the
workspace, 4408 heartbeat not answered, 4429 this process already holds WEBSOCKET_MAX_CONNECTIONS.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from realtime import groups
from realtime.auth import query_params
from realtime.stats import connections

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_IDLE = 4408
CLOSE_TOO_MANY = 4429


@database_sync_to_async
def _workspace_id_for(user: Any, requested: str | None) -> int | None:
    from accounts.selectors import workspace_access_for_user
    from core.errors import ApplicationError

    if requested is not None and not requested.strip().isdigit():
        return None
    try:
        return workspace_access_for_user(user=user, requested=requested).workspace.pk
    except ApplicationError:
        return None


@database_sync_to_async
def _campaign_exists(workspace_id: int, campaign: str | None) -> int | None:
    from sequences.models import Campaign

    if not campaign or not campaign.isdigit() or len(campaign) > 18:
        return None
    return Campaign.objects.filter(workspace_id=workspace_id, pk=int(campaign)).values_list("pk", flat=True).first()


@database_sync_to_async
def _snapshot(kind: str, workspace_id: int, campaign_id: int | None) -> dict[str, Any]:
    from realtime.publish import campaigns_progress
    from realtime.stats import dashboard_snapshot, recent_events

    if kind == groups.DASHBOARD:
        return {"type": "snapshot", **dashboard_snapshot(workspace_id=workspace_id)}
    if kind == groups.EVENTS:
        return {"type": "snapshot", "events": recent_events(workspace_id=workspace_id)}
    assert campaign_id is not None
    progress = campaigns_progress(workspace_id=workspace_id, campaign_ids=[campaign_id])[campaign_id]
    return {"type": "snapshot", **progress}


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """One socket: authenticated, checked, joined to its group, kept alive by ping/pong."""

    workspace_id: int | None = None
    kind = ""
    group = ""
    counted = False
    heartbeat: asyncio.Task | None = None
    awaiting_pong = False

    async def connect(self) -> None:
        await self.accept()  # accept first: a close code before accepting would reach a browser as 1006
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        params = query_params(self.scope)
        self.kind = self.scope["url_route"]["kwargs"]["kind"]
        workspace_id = await _workspace_id_for(user, params.get("workspace"))
        if workspace_id is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        campaign_id = None
        if self.kind == groups.CAMPAIGN:
            campaign_id = await _campaign_exists(workspace_id, params.get("campaign"))
            if campaign_id is None:
                await self.close(code=CLOSE_NOT_FOUND)
                return
        if not await database_sync_to_async(connections.try_add)(workspace_id, self.kind):
            await self.close(code=CLOSE_TOO_MANY)
            return
        self.counted = True
        self.workspace_id = workspace_id
        self.group = (
            groups.campaign_group_name(workspace_id, campaign_id)
            if campaign_id is not None
            else groups.group_name(workspace_id, self.kind)
        )
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.send_json(await _snapshot(self.kind, workspace_id, campaign_id))
        self.heartbeat = asyncio.ensure_future(self._heartbeat())

    async def disconnect(self, code: int) -> None:
        if self.heartbeat is not None and self.heartbeat is not asyncio.current_task():
            self.heartbeat.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.counted and self.workspace_id is not None:
            self.counted = False
            await database_sync_to_async(connections.remove)(self.workspace_id, self.kind)

    async def _heartbeat(self) -> None:
        """Ping every WEBSOCKET_HEARTBEAT_SECONDS; a client that did not answer the last ping is closed."""
        with contextlib.suppress(asyncio.CancelledError):
            while True:
                await asyncio.sleep(settings.WEBSOCKET_HEARTBEAT_SECONDS)
                if self.awaiting_pong:
                    await self.close(code=CLOSE_IDLE)
                    await self.disconnect(CLOSE_IDLE)
                    return
                self.awaiting_pong = True
                await self.send_json({"type": "ping"})
                await database_sync_to_async(connections.refresh)()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "pong":
            self.awaiting_pong = False
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "message": 'Only {"type": "ping"} and {"type": "pong"} are read.'})

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None

    # Group messages carry the client's JSON, encoded once by the publisher (realtime.publish.client_message).
    async def client_message(self, message: dict[str, Any]) -> None:
        await self.send(text_data=message["text"])
