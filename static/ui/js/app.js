// Small progressive enhancements for the marketer UI; every page works without them.
// Loaded as a static file: the Content-Security-Policy allows no inline script.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.querySelector(button.getAttribute("data-copy"));
  if (!field) return;
  field.select();
  if (navigator.clipboard) {
    navigator.clipboard.writeText(field.value).then(
      () => { button.textContent = "Copied"; },
      () => { button.textContent = "Press Ctrl+C"; },
    );
  }
});

document.addEventListener("focusin", (event) => {
  if (event.target.matches && event.target.matches("[data-select-on-focus]")) {
    event.target.select();
  }
});
