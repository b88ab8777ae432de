"""`python manage.py load_demo_data`: the Demo workspace, its owner login, ~200 subscribers and a welcome sequence.

Idempotent: every row is looked up by its natural key first, so a second run writes nothing.
The data is generated from a fixed seed, so every machine gets the same demo.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.models import Membership, Role, Workspace
from sequences.models import DelayUnit, Sequence, SequenceStatus, Step, Template
from subscribers.models import (
    FieldDefinition,
    FieldType,
    ListMembership,
    MailingList,
    MembershipStatus,
    Segment,
    Subscriber,
    SubscriberStatus,
    Tag,
)

DEMO_SLUG = "demo"
DEMO_OWNER_EMAIL = "demo@example.com"
# A development-only default, printed by `make run`; set DEMO_PASSWORD to choose another.
DEMO_DEFAULT_PASSWORD = "demo-password"
DEMO_SEED = 20260101
DEMO_SUBSCRIBER_COUNT = 200

FIRST_NAMES = [
    "Ada", "Alan", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances", "Tim", "Radia", "Guido",
    "Hedy", "John", "Katherine", "Donald", "Edsger", "Sophie", "Yukihiro", "Annie", "Mateo", "Lena", "Hiro",
    "Amara", "Priya", "Noah", "Chloé", "Jonas", "Aiko", "Diego", "Fatima", "Oskar", "",
]  # fmt: skip
LAST_NAMES = [
    "Lovelace", "Turing", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen", "Berners-Lee",
    "Perlman", "van Rossum", "Lamarr", "McCarthy", "Johnson", "Knuth", "Dijkstra", "Wilson", "Matsumoto", "Easley",
    "García", "Schmidt", "Tanaka", "Okafor", "Sharma", "Müller", "Dubois", "Berg", "Sato", "Rossi",
]  # fmt: skip
TIME_ZONES = [
    "America/New_York", "America/Chicago", "America/Los_Angeles", "America/Sao_Paulo", "Europe/London",
    "Europe/Berlin", "Europe/Paris", "Africa/Lagos", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney", "",
]  # fmt: skip
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne"]
PLANS = ["free", "starter", "pro", "enterprise"]
PLAN_WEIGHTS = [50, 25, 18, 7]
PLAN_VALUE = {"free": (0, 0), "starter": (50, 600), "pro": (300, 3000), "enterprise": (2000, 25000)}
TAGS = ["vip", "trial", "beta-tester", "webinar-2026", "churn-risk"]

FIELDS = [
    ("plan", "Plan", FieldType.CHOICE, PLANS),
    ("signup_date", "Signup date", FieldType.DATE, []),
    ("lifetime_value", "Lifetime value", FieldType.NUMBER, []),
    ("company", "Company", FieldType.TEXT, []),
]

_FOOTER = (
    '<p style="color:#888;font-size:12px">{{ workspace.name }} · {{ workspace.postal_address }}<br>'
    "You get this email because you signed up at example.com.</p>"
)
WELCOME_STEPS = [
    (
        0,
        DelayUnit.MINUTES,
        "Welcome 1: Welcome aboard",
        'Welcome aboard, {{ subscriber.first_name|default:"there" }}!',
        "Everything you need for your first five minutes.",
        '<h1>Welcome, {{ subscriber.first_name|default:"there" }}!</h1>'
        "<p>Thanks for joining. Over the next week we will send you two short emails with the things "
        "our best customers wish they had known on day one.</p>"
        '<p>Start here: <a href="https://example.com/getting-started">the five-minute tour</a>.</p>' + _FOOTER,
    ),
    (
        2,
        DelayUnit.DAYS,
        "Welcome 2: Getting started tips",
        '{{ subscriber.first_name|default:"Hi" }}, three tips to get more out of it',
        "Small habits, big results.",
        '<p>Hi {{ subscriber.first_name|default:"there" }},</p>'
        "<ol><li>Import your contacts.</li><li>Segment them by what they care about.</li>"
        "<li>Let a sequence do the follow-up.</li></ol>"
        '<p><a href="https://example.com/tips">Read the full guide</a></p>' + _FOOTER,
    ),
    (
        5,
        DelayUnit.DAYS,
        "Welcome 3: How is it going?",
        'How is it going, {{ subscriber.first_name|default:"friend" }}?',
        "A question, and an offer.",
        '<p>Hi {{ subscriber.first_name|default:"there" }},</p>'
        "<p>You have been with us for a week. You are on the "
        '<strong>{{ subscriber.attributes.plan|default:"free" }}</strong> plan; just reply to this email '
        "if anything is in your way.</p>"
        '<p><a href="https://example.com/pricing">See what Pro adds</a></p>' + _FOOTER,
    ),
]


@dataclass(frozen=True)
class DemoSummary:
    workspace: Workspace
    owner_email: str | None
    password: str | None
    subscribers: int


def demo_password() -> str:
    return os.environ.get("DEMO_PASSWORD") or DEMO_DEFAULT_PASSWORD


def _demo_people(rng: random.Random, today: date) -> list[dict[str, Any]]:
    people = []
    for number in range(1, DEMO_SUBSCRIBER_COUNT + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = ".".join(part for part in (first, last.replace(" ", "")) if part).lower() or "subscriber"
        plan = rng.choices(PLANS, weights=PLAN_WEIGHTS)[0]
        low, high = PLAN_VALUE[plan]
        days_ago = rng.randint(1, 365)
        status = rng.choices(
            [SubscriberStatus.ACTIVE, SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED], weights=[90, 7, 3]
        )[0]
        people.append(
            {
                "email": f"{local}.{number}@example.com",
                "first_name": first,
                "last_name": last,
                "time_zone": rng.choice(TIME_ZONES),
                "locale": rng.choice(["en", "en", "en", "de", "fr", "ja", "es"]),
                "status": status,
                "days_ago": days_ago,
                "confirmed": rng.random() < 0.8,
                "attributes": {
                    "plan": plan,
                    "signup_date": (today - timedelta(days=days_ago)).isoformat(),
                    "lifetime_value": round(rng.uniform(low, high), 2) if high else 0,
                    "company": rng.choice(COMPANIES),
                },
                "tags": sorted(
                    {
                        tag
                        for tag, chance in zip(TAGS, [0.1, 0.2, 0.08, 0.15, 0.12], strict=True)
                        if rng.random() < chance
                    }
                    | ({"trial"} if plan == "free" and rng.random() < 0.3 else set())
                ),
            }
        )
    return people


def _owner_get_or_create(*, email: str, password: str) -> Any:
    User = get_user_model()
    user = User.objects.filter(username__iexact=email).first()
    if user is None:
        return User.objects.create_user(
            username=email, email=email, password=password, is_staff=True, is_superuser=True
        )  # fmt: skip
    changed = []
    if not (user.is_staff and user.is_superuser and user.is_active):
        user.is_staff = user.is_superuser = user.is_active = True
        changed += ["is_staff", "is_superuser", "is_active"]
    # The printed login must work; only a changed DEMO_PASSWORD (or a changed password) writes.
    if not user.check_password(password):
        user.set_password(password)
        changed.append("password")
    if changed:
        user.save(update_fields=changed)
    return user


@transaction.atomic
def demo_data_load(*, with_login: bool) -> DemoSummary:
    """Create whatever of the demo is missing; leave what exists alone."""
    owner = password = None
    if with_login:
        password = demo_password()
        owner = _owner_get_or_create(email=DEMO_OWNER_EMAIL, password=password)

    workspace, _ = Workspace.objects.get_or_create(
        slug=DEMO_SLUG,
        defaults={
            "name": "Demo",
            "time_zone": "America/New_York",
            "from_name": "Demo Team",
            "from_email": "hello@example.com",
            "reply_to": "support@example.com",
            "postal_address": "Demo Inc., 123 Example Street, Springfield, OR 97477, USA",
        },
    )
    if owner is not None:
        Membership.objects.get_or_create(workspace=workspace, user=owner, defaults={"role": Role.OWNER})

    for key, label, field_type, choices in FIELDS:
        FieldDefinition.objects.get_or_create(
            workspace=workspace, key=key, defaults={"label": label, "type": field_type, "choices": choices}
        )
    tags = {name: Tag.objects.get_or_create(workspace=workspace, name=name)[0] for name in TAGS}
    newsletter, _ = MailingList.objects.get_or_create(
        workspace=workspace, name="Newsletter", defaults={"description": "Monthly product news and tips."}
    )
    customers, _ = MailingList.objects.get_or_create(
        workspace=workspace, name="Customers", defaults={"description": "Everyone on a paid plan."}
    )

    now = timezone.now()
    people = _demo_people(random.Random(DEMO_SEED), now.date())
    existing = set(
        Subscriber.objects.filter(workspace=workspace).annotate(e=Lower("email")).values_list("e", flat=True)
    )
    new_rows = []
    for person in people:
        if person["email"] in existing:
            continue
        joined = now - timedelta(days=person["days_ago"], minutes=person["days_ago"] * 7 % 1440)
        left = person["status"] != SubscriberStatus.ACTIVE
        new_rows.append(
            Subscriber(
                workspace=workspace,
                email=person["email"],
                first_name=person["first_name"],
                last_name=person["last_name"],
                time_zone=person["time_zone"],
                locale=person["locale"],
                attributes=person["attributes"],
                status=person["status"],
                status_changed_at=joined + timedelta(days=1) if left else None,
                status_reason="demo data" if left else "",
                consent_source="demo",
                consent_at=joined,
                confirmed_at=joined + timedelta(minutes=5) if person["confirmed"] else None,
                created_at=joined,
            )
        )
    Subscriber.objects.bulk_create(new_rows)
    by_email = {
        s.email.lower(): s
        for s in Subscriber.objects.filter(workspace=workspace, email__in=[p["email"] for p in people])
    }

    # Memberships and tags: add what is missing, never touch rows someone may have changed since.
    memberships, tag_links = [], []
    Through = Subscriber.tags.through
    for person in people:
        subscriber = by_email[person["email"]]
        subscribed = (
            MembershipStatus.SUBSCRIBED
            if person["status"] == SubscriberStatus.ACTIVE
            else MembershipStatus.UNSUBSCRIBED
        )
        memberships.append(
            ListMembership(
                mailing_list=newsletter, subscriber=subscriber, status=subscribed, subscribed_at=subscriber.created_at
            )
        )
        if person["attributes"]["plan"] != "free":
            memberships.append(
                ListMembership(
                    mailing_list=customers,
                    subscriber=subscriber,
                    status=subscribed,
                    subscribed_at=subscriber.created_at,
                )
            )
        tag_links += [Through(subscriber_id=subscriber.pk, tag_id=tags[name].pk) for name in person["tags"]]
    existing_memberships = set(
        ListMembership.objects.filter(mailing_list__in=[newsletter, customers]).values_list(
            "mailing_list_id", "subscriber_id"
        )
    )
    ListMembership.objects.bulk_create(
        [m for m in memberships if (m.mailing_list_id, m.subscriber_id) not in existing_memberships]
    )
    existing_links = set(Through.objects.filter(tag__workspace=workspace).values_list("subscriber_id", "tag_id"))
    Through.objects.bulk_create([t for t in tag_links if (t.subscriber_id, t.tag_id) not in existing_links])

    welcome = _welcome_sequence_get_or_create(workspace=workspace, now=now)
    _demo_automation_get_or_create(workspace=workspace, welcome=welcome)
    _demo_campaign_get_or_create(workspace=workspace, audience=newsletter)
    return DemoSummary(
        workspace=workspace,
        owner_email=DEMO_OWNER_EMAIL if owner is not None else None,
        password=password,
        subscribers=Subscriber.objects.filter(workspace=workspace).count(),
    )


def _welcome_sequence_get_or_create(*, workspace: Workspace, now: datetime) -> Sequence:
    sequence = Sequence.objects.filter(workspace=workspace, name="Welcome series").first()
    if sequence is None:
        sequence = Sequence.objects.create(
            workspace=workspace,
            name="Welcome series",
            description="Three emails over the first week after someone signs up.",
            status=SequenceStatus.ACTIVE,
            send_start_hour=8,
            send_end_hour=20,
            goal_event="upgraded",
            activated_at=now,
        )
    for position, (delay_value, delay_unit, name, subject, preheader, html) in enumerate(WELCOME_STEPS, start=1):
        template = Template.objects.filter(workspace=workspace, name=name).first()
        if template is None:
            template = Template.objects.create(
                workspace=workspace, name=name, subject=subject, preheader=preheader, html=html
            )
        Step.objects.get_or_create(
            sequence=sequence,
            position=position,
            defaults={
                "name": name.split(": ", 1)[1],
                "template": template,
                "delay_value": delay_value,
                "delay_unit": delay_unit,
            },
        )
    return sequence


def _demo_automation_get_or_create(*, workspace: Workspace, welcome: Sequence) -> None:
    """A saved segment and the issue's example workflow, through the services (so they are valid):
    "when someone places their first order, wait a day, and if they have not opened the welcome email,
    tag them and send them a nudge". Active, but nothing runs until an `order_placed` event arrives."""
    from automation.models import Workflow
    from automation.services import workflow_activate, workflow_create
    from subscribers.segments import segment_create

    if not Segment.objects.filter(workspace=workspace, name="Pro customers who open").exists():
        segment_create(
            workspace=workspace,
            name="Pro customers who open",
            description="On the pro plan and opened an email in the last 30 days.",
            rules={"all": [{"attribute": "plan", "op": "eq", "value": "pro"},
                           {"engagement": "opened", "within_days": 30}]},
        )  # fmt: skip
    if Workflow.objects.filter(workspace=workspace, name="First order nudge").exists():
        return
    nudge = Template.objects.filter(workspace=workspace, name="Welcome 3: How is it going?").first()
    workflow = workflow_create(
        workspace=workspace,
        name="First order nudge",
        description="After a first order, a day later: if the welcome emails went unopened, tag and nudge.",
        trigger_type="event",
        trigger_config={"name": "order_placed"},
        dedupe_property="order_id",
        actions=[
            {"type": "wait", "duration": {"value": 1, "unit": "days"}},
            {"type": "branch",
             "rules": {"engagement": "opened", "sequence_id": welcome.pk},
             "then": [{"type": "goal", "name": "engaged_after_order"}],
             "else": [{"type": "add_tag", "tag": "needs-nudge"},
                      *([{"type": "send_email", "template_id": nudge.pk}] if nudge else [])]},
        ],
    )  # fmt: skip
    workflow_activate(workspace=workspace, workflow=workflow)


def _demo_campaign_get_or_create(*, workspace: Workspace, audience: MailingList) -> None:
    """A draft campaign to the newsletter, through the service: the campaign pages have something to show,
    and nothing is sent until someone presses Send now or schedules it."""
    from sequences.campaigns import campaign_create
    from sequences.models import Campaign

    template = Template.objects.filter(workspace=workspace, name="Welcome 2: Getting started tips").first()
    if template is None or Campaign.objects.filter(workspace=workspace, name="Monthly newsletter").exists():
        return
    campaign_create(workspace=workspace, name="Monthly newsletter", template_id=template.pk, lists=[audience.pk])


class Command(BaseCommand):
    help = (
        "Load the demo workspace (slug 'demo'): ~200 subscribers, two lists, tags, a welcome sequence, a segment, "
        "a workflow and a draft campaign, and "
        "outside production an owner login demo@example.com (password: $DEMO_PASSWORD or 'demo-password'). "
        "Safe to run again: it only adds what is missing."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        summary = demo_data_load(with_login=not settings.PRODUCTION)
        self.stdout.write(
            f"Demo workspace '{summary.workspace.name}' (id {summary.workspace.pk}, slug {summary.workspace.slug}): "
            f"{summary.subscribers} subscribers."
        )
        if summary.owner_email:
            self.stdout.write(f"Demo login: {summary.owner_email} / {summary.password}")
        else:
            self.stdout.write("No demo login in production: add members with create_workspace or the admin.")
