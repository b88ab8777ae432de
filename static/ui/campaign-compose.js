// The compose page's "Preview it in the template editor" link follows the template picked; without
// this file it points at the saved template (or the list of templates).
"use strict";

(function () {
  const select = document.getElementById("id_template");
  const link = document.getElementById("template-preview");
  if (!select || !link) return;
  const pattern = link.dataset.pattern; // the editor's URL for template 0

  function follow() {
    const id = select.value;
    link.hidden = !/^\d+$/.test(id);
    if (!link.hidden) link.href = pattern.replace("/0/", "/" + id + "/");
  }

  select.addEventListener("change", follow);
  follow();
})();
