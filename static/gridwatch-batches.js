/* Batches page: roll a batch back after confirmation.  A rollback refused because the batch's
   features were edited since lists those edits; an admin may then roll them back with it. */
(function () {
  "use strict";
  const message = document.getElementById("gw-message");
  const config = JSON.parse(document.getElementById("gw-batches-config").textContent);
  const text = config.labels;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const lang = document.documentElement.lang.slice(0, 2);

  function rollBack(id, dropEdits) {
    const url = "/api/batches/" + id + "?lang=" + lang + (dropEdits ? "&drop_edits=1" : "");
    fetch(url, { method: "DELETE", headers: { "X-CSRFToken": csrfToken } })
      .then((r) => r.json().then((body) => ({ status: r.status, body })))
      .then(({ status, body }) => {
        message.textContent = status >= 400 ? body.message : text.done.replace("{id}", id);
        message.className = status >= 400 ? "error" : "ok";
        const edits = (body.details && body.details.edits) || [];
        if (status === 409 && edits.length && config.admin) {
          const drop = document.createElement("button");
          drop.type = "button";
          drop.className = "gw-drop-edits";
          drop.textContent = text.dropEdits;
          drop.addEventListener("click", () => {
            if (!window.confirm(text.confirmDrop.replace("{id}", id).replace("{n}", String(edits.length)))) return;
            rollBack(id, true);
          });
          message.appendChild(document.createTextNode(" "));
          message.appendChild(drop);
        }
        if (status < 400) window.setTimeout(() => window.location.reload(), 400);
      });
  }

  document.querySelectorAll("button.gw-rollback").forEach((button) => {
    button.addEventListener("click", () => {
      const id = button.dataset.batch;
      const question = button.dataset.grid ? text.confirmGrid : text.confirm;
      if (!window.confirm(question.replace("{id}", id))) return;
      rollBack(id, false);
    });
  });
})();
