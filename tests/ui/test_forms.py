"""form_errors_add: a service's error lands on the field it names, a path into a field on that field."""

from __future__ import annotations

from django import forms

from core.errors import ValidationFailed
from ui.forms import form_errors_add


class ActionsForm(forms.Form):
    name = forms.CharField(required=False)
    choices = forms.CharField(required=False)
    mailing_list = forms.CharField(required=False)


def bound() -> ActionsForm:
    form = ActionsForm({})
    assert form.is_valid()
    return form


def test_an_error_naming_a_field_goes_on_it():
    form = bound()
    form_errors_add(form, ValidationFailed.for_field("name", "This field may not be blank."))
    assert form.errors == {"name": ["This field may not be blank."]}


def test_an_alias_maps_the_services_name_to_the_forms():
    form = bound()
    form_errors_add(form, ValidationFailed.for_field("list_id", "Unknown list."), aliases={"list_id": "mailing_list"})
    assert form.errors == {"mailing_list": ["Unknown list."]}


def test_a_path_into_a_field_goes_on_that_field_with_the_path():
    form = bound()
    form_errors_add(form, ValidationFailed("bad", details={"choices[1]": ["Listed twice."]}))
    assert form.errors == {"choices": ["choices[1]: Listed twice."]}

    form = bound()
    form_errors_add(form, ValidationFailed("bad", details={"list_id.x": ["No."]}), aliases={"list_id": "mailing_list"})
    assert form.errors == {"mailing_list": ["list_id.x: No."]}


def test_an_error_naming_no_field_of_the_form_goes_on_the_form():
    form = bound()
    form_errors_add(form, ValidationFailed("Pick at least one list.", details={"audience[0].id": ["Unknown."]}))
    assert form.errors == {"__all__": ["Pick at least one list."]}
