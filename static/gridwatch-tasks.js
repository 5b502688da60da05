/* Tasks page (交办单): figures, the list, one task's items with fix / verify / return, a new task. */
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("gw-tasks-config").textContent);
  const text = config.labels;
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const lang = document.documentElement.lang.slice(0, 2);
  const $ = (id) => document.getElementById(id);
  const message = $("gw-task-message");
  let current = null;
  let shownItems = [];

  function say(body, ok) {
    message.textContent = body;
    message.className = ok ? "ok" : "error";
  }

  // a button is disabled while its request is in flight: a double click sends once
  function busy(button, promise) {
    button.disabled = true;
    return promise.finally(() => { button.disabled = false; });
  }

  function call(method, url, body) {
    const init = { method, headers: { "X-CSRFToken": csrfToken, Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const sep = url.indexOf("?") < 0 ? "?" : "&";
    return fetch(url + sep + "lang=" + lang, init).then((r) =>
      r.json().then((data) => {
        if (r.status >= 400) throw new Error(data.message || String(r.status));
        return data;
      })
    );
  }

  function cell(row, value, className) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "" : String(value);
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function percent(v) {
    return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%";
  }

  // figures -------------------------------------------------------------------------------
  const level = $("gw-task-level");
  const asOf = $("gw-task-asof");
  config.levels.forEach((lv) => level.add(new Option(lv.label, lv.name)));
  asOf.value = config.today;

  function statsUrl(format) {
    return "/api/tasks/stats?level=" + encodeURIComponent(level.value) + "&as_of=" + encodeURIComponent(asOf.value) + "&format=" + format;
  }

  function loadStats() {
    $("gw-task-xlsx").href = statsUrl("xlsx");
    $("gw-task-csv").href = statsUrl("csv");
    call("GET", statsUrl("json")).then((data) => {
      const table = $("gw-task-stats");
      const head = document.createElement("tr");
      cell(head, "");
      config.metrics.forEach(([, name]) => cell(head, name));
      table.tHead.replaceChildren(head);
      const rows = data.rows.map((r) => {
        const tr = document.createElement("tr");
        cell(tr, r.name ? r.name + " " + r.code : r.code);
        config.metrics.forEach(([m]) => cell(tr, m.endsWith("_rate") ? percent(r[m]) : r[m]));
        return tr;
      });
      const total = document.createElement("tr");
      cell(total, text.total);
      config.metrics.forEach(([m]) => cell(total, m.endsWith("_rate") ? percent(data.totals[m]) : data.totals[m]));
      rows.push(total);
      table.tBodies[0].replaceChildren(...rows);
    }).catch((e) => say(e.message, false));
  }
  level.addEventListener("change", loadStats);
  asOf.addEventListener("change", loadStats);

  // the list ----------------------------------------------------------------------------------
  const statusFilter = $("gw-task-status");

  function loadList() {
    const status = statusFilter.value ? "&status=" + statusFilter.value : "";
    call("GET", "/api/tasks?as_of=" + encodeURIComponent(config.today) + status).then((data) => {
      const rows = data.tasks.map((t) => {
        const tr = document.createElement("tr");
        tr.dataset.task = t.id;
        if (current === t.id) tr.className = "gw-selected";
        cell(tr, t.number);
        cell(tr, t.title);
        cell(tr, [t.area.join(","), t.assignee || ""].filter(Boolean).join(" · "));
        cell(tr, t.deadline);
        cell(tr, text.status[t.status] || t.status);
        cell(tr, t.counts.verified + "/" + t.counts.handed_over);
        cell(tr, t.counts.overdue || "", t.counts.overdue ? "gw-late" : "");
        tr.addEventListener("click", () => openTask(t.id));
        return tr;
      });
      if (!rows.length) {
        const tr = document.createElement("tr");
        cell(tr, text.none).colSpan = 7;
        rows.push(tr);
      }
      $("gw-task-list").tBodies[0].replaceChildren(...rows);
    }).catch((e) => say(e.message, false));
  }
  statusFilter.addEventListener("change", loadList);

  // one task --------------------------------------------------------------------------------
  function showTask(t) {
    current = t.id;
    shownItems = t.items;
    $("gw-task-detail").hidden = false;
    $("gw-task-title").textContent = t.number + " " + t.title;
    $("gw-task-meta").textContent = [t.instructions || "", t.area.join(","), t.assignee || "", t.deadline, text.status[t.status] || t.status]
      .filter(Boolean).join(" · ");
    const rows = t.items.map((i) => {
      const tr = document.createElement("tr");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = i.id;
      box.setAttribute("aria-label", text.items + " " + i.id);
      const td = document.createElement("td");
      td.appendChild(box);
      tr.appendChild(td);
      cell(tr, i.id);
      cell(tr, lang === "en" ? i.label_en : i.label_zh);
      cell(tr, [i.key || "#" + i.feature, i.place, i.key ? "#" + i.feature : ""].filter(Boolean).join(" · "));
      cell(tr, i.unit);
      cell(tr, i.deadline, i.overdue ? "gw-late" : "");
      cell(tr, (text.states[i.state] || i.state) + (i.overdue ? " · " + text.overdue : ""));
      cell(tr, i.rework || "");
      return tr;
    });
    $("gw-task-items").tBodies[0].replaceChildren(...rows);
    $("gw-task-all").checked = false;
    const may = t.may || {};
    $("gw-task-fixed").hidden = !may.fixed;
    $("gw-task-verify").hidden = !may.verify;
    $("gw-task-return").hidden = !may.return;
    $("gw-task-deadline").parentNode.hidden = !may.return;
    $("gw-task-photos").parentNode.hidden = !may.fixed;
    document.querySelectorAll("#gw-task-list tr[data-task]").forEach((tr) => {
      tr.className = Number(tr.dataset.task) === t.id ? "gw-selected" : "";
    });
  }

  function openTask(id) {
    call("GET", "/api/tasks/" + id + "?as_of=" + encodeURIComponent(config.today)).then(showTask).catch((e) => say(e.message, false));
  }

  $("gw-task-all").addEventListener("change", (e) => {
    document.querySelectorAll("#gw-task-items tbody input[type=checkbox]").forEach((b) => { b.checked = e.target.checked; });
  });

  function chosen() {
    return Array.from(document.querySelectorAll("#gw-task-items tbody input:checked")).map((b) => Number(b.value));
  }

  // the photos chosen under 整改完成 are uploaded to each chosen item's feature; their ids go
  // with the fix
  function upload(items) {
    const files = Array.from($("gw-task-photos").files || []);
    const features = items.map((id) => shownItems.find((i) => i.id === id)).filter(Boolean);
    if (!files.length) return Promise.resolve([]);
    say(text.uploading, true);
    const sends = [];
    features.forEach((i) => files.forEach((file) => {
      const data = new FormData();
      data.append("file", file);
      sends.push(fetch("/api/features/" + i.layer + "/" + i.feature + "/photos?lang=" + lang, {
        method: "POST", headers: { "X-CSRFToken": csrfToken, Accept: "application/json" }, body: data,
      }).then((r) => r.json().then((d) => {
        if (r.status >= 400) throw new Error(d.message || String(r.status));
        return d.id;
      })));
    }));
    return Promise.all(sends);
  }

  function act(kind, button) {
    if (current === null || button.disabled) return;
    const items = chosen();
    if (!items.length) { say(text.chooseItems, false); return; }
    const body = { items, note: $("gw-task-note").value };
    if (kind === "return" && $("gw-task-deadline").value) body.deadline = $("gw-task-deadline").value;
    const photos = kind === "fixed" ? upload(items) : Promise.resolve([]);
    busy(button, photos.then((ids) => {
      if (kind === "fixed") body.photos = ids;
      return call("POST", "/api/tasks/" + current + "/" + kind, body);
    }).then((t) => {
      say(text.done, true);
      $("gw-task-note").value = "";
      $("gw-task-photos").value = "";
      $("gw-task-deadline").value = "";
      showTask(t);
      loadList();
      loadStats();
    }).catch((e) => say(e.message, false)));
  }
  $("gw-task-fixed").addEventListener("click", (e) => act("fixed", e.currentTarget));
  $("gw-task-verify").addEventListener("click", (e) => act("verify", e.currentTarget));
  $("gw-task-return").addEventListener("click", (e) => act("return", e.currentTarget));

  // a new task --------------------------------------------------------------------------------
  const form = $("gw-task-form");
  const layerSelect = $("gw-task-layer");
  const statusSelect = $("gw-task-layer-status");
  config.layers.forEach((l) => layerSelect.add(new Option(l.label, l.name)));

  function fillStatuses() {
    const layer = config.layers.find((l) => l.name === layerSelect.value);
    statusSelect.replaceChildren(new Option("—", ""));
    (layer ? layer.statuses : []).forEach(([code, name]) => statusSelect.add(new Option(name, code)));
  }
  layerSelect.addEventListener("change", fillStatuses);
  const pre = config.prefill;
  if (pre.layer) layerSelect.value = pre.layer;
  fillStatuses();
  if (pre.status) statusSelect.value = pre.status;
  form.elements.within.value = pre.within || "";
  form.elements.area.value = pre.area || pre.within || "";
  form.elements.ids.value = pre.ids || "";

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    if (submit.disabled) return;
    const f = form.elements;
    const body = { title: f.title.value, instructions: f.instructions.value, layer: f.layer.value };
    if (f.area.value.trim()) body.area = f.area.value;
    if (f.assignee.value.trim()) body.assignee = f.assignee.value.trim();
    body[f.unit.value] = Number(f.n.value);
    // feature numbers or survey ids (案件编号 …): the server looks them up
    const ids = f.ids.value.split(/[,，、\s]+/).filter(Boolean);
    if (ids.length) {
      body.features = ids.map((id) => ({ layer: f.layer.value, id }));
    } else {
      if (f.within.value.trim()) body.within = f.within.value.trim();
      if (f.status.value) body.status = [f.status.value];
    }
    busy(submit, call("POST", "/api/tasks", body).then((t) => {
      say(text.created.replace("{number}", t.number), true);
      form.reset();
      fillStatuses();
      loadList();
      loadStats();
      showTask(t);
    }).catch((err) => say(err.message, false)));
  });

  loadStats();
  loadList();
})();
