"""factory_boy factories for the models tests build on."""

import factory
from django.contrib.auth import get_user_model

from accounts.models import Membership, Role, Workspace
from sequences.models import Sequence, Step, Template
from subscribers.models import FieldDefinition, MailingList, Subscriber, Tag


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or "correct-horse-battery")
        if create:
            self.save(update_fields=["password"])


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Workspace {n}")
    slug = factory.Sequence(lambda n: f"workspace-{n}")
    from_name = "Acme"
    from_email = "news@acme.test"
    postal_address = "1 Main Street, Springfield"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    workspace = factory.SubFactory(WorkspaceFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.OWNER


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    workspace = factory.SubFactory(WorkspaceFactory)
    email = factory.Sequence(lambda n: f"subscriber{n}@example.org")
    first_name = "Ada"
    last_name = "Lovelace"


class MailingListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MailingList

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"List {n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"tag-{n}")


class FieldDefinitionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FieldDefinition

    workspace = factory.SubFactory(WorkspaceFactory)
    key = factory.Sequence(lambda n: f"field_{n}")
    label = factory.Sequence(lambda n: f"Field {n}")


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Template

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Template {n}")
    subject = "Hello {{ subscriber.first_name|default:'there' }}"
    html = "<p>Hi {{ subscriber.first_name|default:'there' }}, welcome.</p>"


class SequenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Sequence

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"Sequence {n}")


class StepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Step

    sequence = factory.SubFactory(SequenceFactory)
    template = factory.SubFactory(TemplateFactory, workspace=factory.SelfAttribute("..sequence.workspace"))
    position = factory.Sequence(lambda n: n)
    delay_value = 1
    delay_unit = "days"


class EnrollmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "sequences.Enrollment"

    sequence = factory.SubFactory(SequenceFactory)
    workspace = factory.SelfAttribute("sequence.workspace")
    subscriber = factory.SubFactory(SubscriberFactory, workspace=factory.SelfAttribute("..sequence.workspace"))
    status = "active"


class SuppressionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "subscribers.Suppression"

    workspace = factory.SubFactory(WorkspaceFactory)
    kind = "email"
    value = factory.Sequence(lambda n: f"suppressed{n}@example.org")


from datetime import timedelta  # noqa: E402 - imports of the appended factories below

from django.utils import timezone  # noqa: E402


class MessageFactory(factory.django.DjangoModelFactory):
    """A sent message; tracking tests build these directly (the scheduler makes them in production)."""

    class Meta:
        model = "sequences.Message"

    workspace = factory.SubFactory(WorkspaceFactory)
    subscriber = factory.SubFactory(SubscriberFactory, workspace=factory.SelfAttribute("..workspace"))
    to_email = factory.SelfAttribute("subscriber.email")
    from_email = "news@acme.test"
    subject = "Hello"
    status = "sent"
    sent_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    links = factory.LazyFunction(lambda: ["https://example.com/welcome", "https://docs.example.com/start?a=1&b=2"])
