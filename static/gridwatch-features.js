/* The feature list (/features): each row's "change" button opens the edit form
   (gridwatch-edit.js) in a row of its own under it; a change saved shows the list again, read anew. */
(function () {
  "use strict";
  const edit = window.gridwatch.edit;
  const table = document.getElementById("gw-features");
  if (!edit || !table) return;
  table.addEventListener("click", (e) => {
    const button = e.target.closest(".gw-row-edit");
    if (!button) return;
    const row = button.closest("tr");
    const next = row.nextElementSibling;
    if (next && next.classList.contains("gw-edit-tr")) {
      next.remove(); // a second click closes the form
      return;
    }
    const tr = document.createElement("tr");
    tr.className = "gw-edit-tr";
    const td = document.createElement("td");
    td.colSpan = row.children.length;
    tr.appendChild(td);
    row.after(tr);
    edit.open(td, button.dataset.layer, button.dataset.id, {
      onSaved: () => setTimeout(() => window.location.reload(), 800),
    });
  });
})();
