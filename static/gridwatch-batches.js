/* Batches page: roll a batch back after confirmation. */
(function () {
  "use strict";
  const message = document.getElementById("gw-message");
  document.querySelectorAll("button.gw-rollback").forEach((button) => {
    button.addEventListener("click", () => {
      const id = button.dataset.batch;
      if (!window.confirm("确定回滚批次 " + id + "？该批次的要素将被删除，被它替换的要素将恢复。")) return;
      fetch("/api/batches/" + id, { method: "DELETE", headers: { "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content } })
        .then((r) => r.json().then((body) => ({ status: r.status, body })))
        .then(({ status, body }) => {
          message.textContent = status >= 400 ? body.message : "已回滚批次 " + id + " / rolled back";
          message.className = status >= 400 ? "error" : "ok";
          if (status < 400) window.setTimeout(() => window.location.reload(), 400);
        });
    });
  });
})();
