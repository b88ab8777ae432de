"""Forms of the settings pages for webhooks and members: they only shape input for the services."""

from __future__ import annotations

from django import forms

from accounts.models import Role
from automation.outgoing.events import ALL_TYPES, SUBSCRIBABLE_TYPES


def _event_label(event_type: str) -> str:
    # "subscriber.tag_added" -> "Subscriber tag added (subscriber.tag_added)": readable, and still the
    # name integrators see in the payload's "type".
    words = event_type.replace(".", " ").replace("_", " ")
    return f"{words[:1].upper()}{words[1:]} ({event_type})"


EVENT_CHOICES = [(ALL_TYPES, "All events (*)"), *((name, _event_label(name)) for name in SUBSCRIBABLE_TYPES)]


class WebhookForm(forms.Form):
    url = forms.CharField(label="URL", max_length=2000, help_text="http or https; it must resolve to a public address.")
    # Not required here: an empty choice is the service's error ("a non-empty list of event types").
    event_types = forms.MultipleChoiceField(
        label="Events", choices=EVENT_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )
    description = forms.CharField(max_length=200, required=False)


class MemberAddForm(forms.Form):
    prefix = "member"  # beside the per-row role forms on one page: ids must not collide (id_role)

    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MARKETER)
    # The members API's optional password, used only when no account exists yet for the email.
    password = forms.CharField(
        required=False, min_length=8, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="For a new account only; left empty, they cannot sign in until a password is set.",
    )  # fmt: skip


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
