// Segment builder: remove a condition or a group without a round trip, then move the keyboard focus to
// the nearest "Add condition" button. Adding and re-rendering rows is htmx; the rules live in the form.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-segment-remove]");
  if (!button) return;
  const item = button.closest(".seg-item");
  if (!item) return;
  const container = item.parentElement.closest("fieldset");
  item.remove();
  const next = container && container.querySelector(":scope > .seg-add, :scope > .actions > .seg-add");
  if (next) next.focus();
});
