/* Upload page: send the file with a progress bar, show the import report, confirm or discard.
   Everything from the file is shown with textContent. */
(function () {
  "use strict";
  const api = "/api/uploads";
  const form = document.getElementById("gw-upload");
  const fileInput = document.getElementById("gw-file");
  const drop = document.getElementById("gw-drop");
  const progress = document.getElementById("gw-progress");
  const report = document.getElementById("gw-report");
  const message = document.getElementById("gw-message");
  let chosen = null;
  let uploadId = null;

  function setFile(file) {
    chosen = file;
    document.getElementById("gw-filename").textContent = file ? file.name + "（" + Math.round(file.size / 1024) + " KB）" : "";
  }
  fileInput.addEventListener("change", () => setFile(fileInput.files[0] || null));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]); });

  function say(text, ok) {
    message.textContent = text;
    message.className = ok ? "ok" : "error";
  }

  function send(url, data, onDone) {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    progress.hidden = false;
    progress.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = (100 * e.loaded) / e.total; };
    xhr.onload = () => {
      progress.hidden = true;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = { message: xhr.statusText }; }
      onDone(xhr.status, body);
    };
    xhr.onerror = () => { progress.hidden = true; say("网络错误 / network error", false); };
    xhr.send(data);
  }

  function row(table, k, v) {
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.textContent = k;
    const td = document.createElement("td"); td.textContent = v === null || v === undefined ? "—" : String(v);
    tr.append(th, td); table.appendChild(tr);
  }

  function show(status, body) {
    report.hidden = false;
    if (status >= 400) {
      say(body.message || "错误 / error", false);
      document.getElementById("gw-commit").disabled = true;
      return;
    }
    uploadId = body.upload_id || uploadId;
    const dup = body.status === "duplicate";
    say(dup ? "该文件已导入过（批次 " + body.duplicate_of + "），不会重复写入" : "检查完成，确认后写入 / checked: confirm to import", !dup);
    document.getElementById("gw-commit").disabled = dup;
    const summary = document.getElementById("gw-summary");
    summary.replaceChildren();
    row(summary, "文件 File", body.source_name + (body.dataset && body.dataset !== body.source_name ? " → " + body.dataset : ""));
    row(summary, "读取行数 Rows read", body.rows_read);
    row(summary, "可导入 Accepted", body.accepted);
    row(summary, "拒绝 Rejected", body.rejected_count);
    row(summary, "未落入网格 Outside every grid", body.unassigned);
    row(summary, "编码 Encoding", body.encoding + " (" + body.encoding_source + ")");
    row(summary, "坐标系 CRS", body.crs + " (" + body.crs_source + ")");
    const warnings = document.getElementById("gw-warnings");
    warnings.replaceChildren();
    (body.warnings || []).forEach((w) => { const li = document.createElement("li"); li.textContent = w.zh + " / " + w.en; warnings.appendChild(li); });
    const tbody = document.querySelector("#gw-rejected tbody");
    tbody.replaceChildren();
    (body.rejected || []).slice(0, 500).forEach((r) => {
      const tr = document.createElement("tr");
      [r.row, r.reason_zh, r.reason_en].forEach((v) => { const td = document.createElement("td"); td.textContent = String(v); tr.appendChild(td); });
      tbody.appendChild(tr);
    });
  }

  function options() {
    const data = new FormData();
    ["layer", "encoding", "crs", "member"].forEach((k) => data.append(k, form.elements[k].value));
    return data;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!chosen) { report.hidden = false; say("请选择文件 / choose a file", false); return; }
    const data = options();
    data.append("file", chosen, chosen.name);
    send(api, data, show);
  });
  document.getElementById("gw-reread").addEventListener("click", () => {
    if (uploadId) send(api + "/" + uploadId + "/preview", options(), show);
  });
  document.getElementById("gw-commit").addEventListener("click", () => {
    if (!uploadId) return;
    send(api + "/" + uploadId + "/commit", new FormData(), (status, body) => {
      if (status >= 400) { say(body.message, false); return; }
      uploadId = null;
      document.getElementById("gw-commit").disabled = true;
      say("已导入：批次 " + body.batch_id + "，新增 " + body.added + "，更新 " + body.updated + " / imported", true);
    });
  });
  document.getElementById("gw-discard").addEventListener("click", () => {
    if (!uploadId) return;
    fetch(api + "/" + uploadId, { method: "DELETE" }).then(() => { uploadId = null; report.hidden = true; });
  });
})();
