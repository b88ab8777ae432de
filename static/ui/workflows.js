// Workflow editor: show only the inputs of the chosen trigger type or action kind. Every input is in
// the page already (the server hides the others); without this file a changed kind shows its inputs
// after Save. A static file: the Content-Security-Policy allows no inline script.
"use strict";

function showKind(select) {
  const scope = select.closest("[data-kind-scope]");
  if (!scope) return;
  const kind = select.value;
  scope.querySelectorAll("[data-kinds]").forEach((element) => {
    element.hidden = !element.getAttribute("data-kinds").split(" ").includes(kind);
  });
  const label = scope.querySelector("[data-kind-label]");
  if (label && select.selectedOptions.length) label.textContent = select.selectedOptions[0].textContent;
}

document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("select[data-kind-switch]")) showKind(event.target);
});

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("select[data-kind-switch]").forEach(showKind);
});
