// Template editor: switch the preview between desktop (600 px) and mobile (375 px) widths.
// A static file: the Content-Security-Policy allows no inline script.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-preview-width]");
  if (!button) return;
  const frame = document.getElementById("preview-frame");
  if (!frame) return;
  const width = button.getAttribute("data-preview-width");
  frame.classList.remove("desktop", "mobile");
  frame.classList.add(width);
  document.querySelectorAll("[data-preview-width]").forEach((other) => {
    const active = other === button;
    other.setAttribute("aria-pressed", active ? "true" : "false");
    other.classList.toggle("ghost", !active);
  });
});
