/* Batches page: roll a batch back after confirmation. */
(function () {
  "use strict";
  const message = document.getElementById("gw-message");
  const text = JSON.parse(document.getElementById("gw-batches-config").textContent).labels;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  document.querySelectorAll("button.gw-rollback").forEach((button) => {
    button.addEventListener("click", () => {
      const id = button.dataset.batch;
      const question = button.dataset.grid ? text.confirmGrid : text.confirm;
      if (!window.confirm(question.replace("{id}", id))) return;
      fetch("/api/batches/" + id + "?lang=" + document.documentElement.lang.slice(0, 2), { method: "DELETE", headers: { "X-CSRFToken": csrfToken } })
        .then((r) => r.json().then((body) => ({ status: r.status, body })))
        .then(({ status, body }) => {
          message.textContent = status >= 400 ? body.message : text.done.replace("{id}", id);
          message.className = status >= 400 ? "error" : "ok";
          if (status < 400) window.setTimeout(() => window.location.reload(), 400);
        });
    });
  });
})();
