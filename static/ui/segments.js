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

// What was edited last is what Preview and Save read: typing in the JSON selects "this JSON", changing a
// row selects "the editor above" (the radio stays visible and can be set by hand).
function chooseSource(value) {
  const radio = document.querySelector(`input[data-seg-source][value="${value}"]`);
  if (radio) radio.checked = true;
}

document.addEventListener("input", (event) => {
  if (event.target.id === "rules-json") chooseSource("json");
});

document.addEventListener("change", (event) => {
  const root = event.target.closest && event.target.closest(".seg-root");
  if (root && root.querySelector(".seg-row")) chooseSource("rows");
});
