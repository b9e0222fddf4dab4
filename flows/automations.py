"""kwil-sync's automations, as code: `kwil-sync automations create`.

- **follow stalled** (proactive): a (database, target) pair that has been followed
  emits no `kwil-sync.follow.polled` for `stall_minutes`;
- **record quarantined** (reactive): any `kwil-sync.record.quarantined`.

Each sends a notification through a notification block when one is named (Slack, email,
PagerDuty: any of Prefect's notification blocks), and otherwise only records that it
fired (an automation event in the UI's event feed). Creating them again replaces them,
so the command is safe to rerun after changing the settings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect.client.orchestration import get_client
from prefect.events.actions import DoNothing, SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from kwil_sync.flows.events import EVENT_PREFIX

__all__ = ["QUARANTINE_AUTOMATION", "STALL_AUTOMATION", "create_automations"]

STALL_AUTOMATION = "kwil-sync: follow stalled"
QUARANTINE_AUTOMATION = "kwil-sync: record quarantined"
PAIRS: dict[str, str | list[str]] = {"prefect.resource.id": f"{EVENT_PREFIX}.pair.*"}


def _action(notify_block: str | None, subject: str, body: str) -> Any:
    if notify_block is None:
        return DoNothing()
    slug, sep, name = notify_block.partition("/")
    if not sep:
        raise ValueError(f"name the notification block as TYPE/NAME (e.g. slack-webhook/"
                         f"kwil-sync-alerts), got {notify_block!r}")
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(name=name, block_type_slug=slug)
    return SendNotification(block_document_id=document.id, subject=subject, body=body)


def create_automations(*, stall_minutes: float = 10.0,
                       notify_block: str | None = None) -> dict[str, str]:
    """Create (or replace) the two automations; returns name -> automation id.

    Args:
        stall_minutes: How long a followed pair may go without a poll.
        notify_block: A notification block to send through, as TYPE/NAME
            (`slack-webhook/kwil-sync-alerts`), if any.
    """
    automations = [
        AutomationCore(
            name=STALL_AUTOMATION,
            description=f"A followed (database, target) pair had no follow poll for "
                        f"{stall_minutes:g} minutes.",
            trigger=EventTrigger(
                posture=Posture.Proactive, expect={f"{EVENT_PREFIX}.follow.polled"},
                after={f"{EVENT_PREFIX}.follow.polled"}, match=PAIRS,
                for_each={"prefect.resource.id"}, threshold=1,
                within=timedelta(minutes=stall_minutes)),
            actions=[_action(notify_block, "kwil-sync: follow stalled",
                             "No follow poll of {{ event.resource['prefect.resource.name'] }} "
                             f"for {stall_minutes:g} minutes.")]),
        AutomationCore(
            name=QUARANTINE_AUTOMATION,
            description="A record was quarantined: untrusted, forged, tampered or unfit.",
            trigger=EventTrigger(
                posture=Posture.Reactive, expect={f"{EVENT_PREFIX}.record.quarantined"},
                match=PAIRS, threshold=1, within=timedelta(0)),
            actions=[_action(notify_block, "kwil-sync: record quarantined",
                             "{{ event.resource['prefect.resource.name'] }}: "
                             "{{ event.payload.reason }} {{ event.payload.item_id }}: "
                             "{{ event.payload.detail }}")]),
    ]
    with get_client(sync_client=True) as client:
        for existing in client.read_automations():
            if existing.name in (STALL_AUTOMATION, QUARANTINE_AUTOMATION):
                client.delete_automation(existing.id)
        return {a.name: str(client.create_automation(a)) for a in automations}
