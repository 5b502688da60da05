/* Upload page: send the file with a progress bar, show the import report with a small map of
   where the accepted features land, confirm or discard.  The page's strings come from its JSON
   config in the page's language; everything from the file is shown with textContent. */
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("gw-upload-config").textContent);
  const text = cfg.labels;
  const english = cfg.lang === "en";
  const langParam = "lang=" + encodeURIComponent(cfg.lang);
  const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
  const form = document.getElementById("gw-upload");
  const fileInput = document.getElementById("gw-file");
  const drop = document.getElementById("gw-drop");
  const progress = document.getElementById("gw-progress");
  const report = document.getElementById("gw-report");
  const message = document.getElementById("gw-message");
  const summary = document.getElementById("gw-summary");
  const warnings = document.getElementById("gw-warnings");
  const rejected = document.querySelector("#gw-rejected tbody");
  const commitButton = document.getElementById("gw-commit");
  let chosen = null;
  let uploadId = null;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? String(values[key]) : whole));
  }

  function uploadUrl(suffix) {
    return cfg.api + (uploadId ? "/" + encodeURIComponent(uploadId) : "") + (suffix || "") + "?" + langParam;
  }

  function setFile(file) {
    chosen = file;
    document.getElementById("gw-filename").textContent = file ? file.name + " (" + Math.round(file.size / 1024) + " KB)" : "";
  }
  fileInput.addEventListener("change", () => setFile(fileInput.files[0] || null));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) setFile(e.dataTransfer.files[0]); });

  function say(words, ok) {
    message.textContent = words;
    message.className = ok ? "ok" : "error";
  }

  function send(url, data, onDone) {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRFToken", csrfToken);
    progress.hidden = false;
    progress.value = 0;
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = (100 * e.loaded) / e.total; };
    xhr.onload = () => {
      progress.hidden = true;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = { message: xhr.statusText }; }
      onDone(xhr.status, body);
    };
    xhr.onerror = () => { progress.hidden = true; say(text.network, false); };
    xhr.send(data);
  }

  function row(table, k, v) {
    const tr = document.createElement("tr");
    const th = document.createElement("th"); th.textContent = k;
    const td = document.createElement("td"); td.textContent = v === null || v === undefined ? "—" : String(v);
    tr.append(th, td); table.appendChild(tr);
  }

  function withSource(value, source) {
    if (value === null || value === undefined) return null;
    return source ? value + " (" + (cfg.sources[source] || source) + ")" : String(value);
  }

  function showRejected(rows, total) {
    rejected.replaceChildren();
    const shown = rows.slice(0, 500);
    shown.forEach((r) => {
      const tr = document.createElement("tr");
      [r.row, r.survey_id, r.value, english ? r.reason_en : r.reason_zh].forEach((v) => {
        const td = document.createElement("td");
        td.textContent = v === null || v === undefined ? "—" : String(v);
        tr.appendChild(td);
      });
      rejected.appendChild(tr);
    });
    const more = (total || rows.length) - shown.length;
    if (more > 0) {  // the report lists the first rows only; the count is of all
      const tr = document.createElement("tr");
      const td = document.createElement("td");
      td.colSpan = 4;
      td.textContent = english ? "… " + more + " more rejected rows" : "… 另有 " + more + " 行被拒绝";
      tr.appendChild(td);
      rejected.appendChild(tr);
    }
  }

  function show(status, body) {
    report.hidden = false;
    document.getElementById("gw-onward").hidden = true;
    summary.replaceChildren();
    warnings.replaceChildren();
    if (status >= 400) {
      say(body.message || text.error, false);
      commitButton.disabled = true;
      showRejected((body.details && body.details.rejected) || []);
      preview.clear();
      return;
    }
    uploadId = body.upload_id || uploadId;
    const dup = body.status === "duplicate";
    say(dup ? fill(text.duplicate, { batch: body.duplicate_of }) : text.checked, !dup);
    commitButton.disabled = dup;
    row(summary, text.file, body.source_name + (body.dataset && body.dataset !== body.source_name ? " → " + body.dataset : ""));
    row(summary, text.rowsRead, body.rows_read);
    row(summary, text.accepted, body.accepted);
    if (!dup) {  // the write was made and rolled back: these are the commit's figures
      row(summary, text.added, body.added);
      row(summary, text.updated, body.updated);
      row(summary, text.unchanged, body.unchanged);
    }
    row(summary, text.rejected, body.rejected_count);
    row(summary, text.unassigned, body.unassigned);
    row(summary, text.encoding, withSource(body.encoding, body.encoding_source));
    row(summary, text.crs, withSource(body.crs, body.crs_source));
    if (body.grid_change) showGridChange(body.grid_change);
    (body.warnings || []).forEach((w) => {
      const li = document.createElement("li"); li.textContent = english ? w.en : w.zh; warnings.appendChild(li);
    });
    showRejected(body.rejected || [], body.rejected_count);
    mapping.show(body);
    preview.load();
  }

  /* A grid upload: the day its version is in force from and the units it adds, removes and reshapes. */
  function showGridChange(change) {
    row(summary, cfg.gridVersion.validFrom, change.valid_from);
    row(summary, "", fill(cfg.gridVersion.units, {
      added: change.units_added_count, removed: change.units_removed_count, reshaped: change.units_reshaped_count,
    }));
    if (change.issued_changed) {
      const c = change.issued_changed;
      const li = document.createElement("li");
      li.textContent = fill(cfg.gridVersion.issued, { from: c.from, to: c.to, version: c.computed_on });
      warnings.appendChild(li);
    }
  }

  /* Field and value mappings: a select per column and per distinct value.  A change marks the
     page: the commit waits for a re-read, which sends the whole of both mappings. */
  const mapping = (function () {
    const box = document.getElementById("gw-mapping");
    const fieldsBody = document.querySelector("#gw-fields tbody");
    const valuesBox = document.getElementById("gw-values");
    const rememberBox = document.getElementById("gw-remember-box");
    const remember = document.getElementById("gw-remember");
    const dirtyNote = document.getElementById("gw-dirty");
    const how = cfg.how;
    let fieldSelects = [];
    let valueSelects = [];
    let dirty = false;
    let shownLayer = null;

    function option(value, label, selected) {
      const o = document.createElement("option");
      o.value = value; o.textContent = label; o.selected = selected;
      return o;
    }

    function markDirty() {
      dirty = true;
      dirtyNote.hidden = false;
      commitButton.disabled = true;
    }

    function cell(tr, content) {
      const td = document.createElement("td");
      if (content instanceof Node) td.appendChild(content); else td.textContent = content;
      tr.appendChild(td);
      return td;
    }

    function showFields(body) {
      fieldsBody.replaceChildren();
      fieldSelects = [];
      const fields = cfg.layerFields[body.layer] || [];
      const columns = Object.keys(body.field_mapping || {}).concat(body.unmatched_fields || []);
      columns.forEach((column) => {
        const tr = document.createElement("tr");
        cell(tr, column);
        const select = document.createElement("select");
        select.dataset.column = column;
        const current = (body.field_mapping || {})[column] || "";
        select.appendChild(option("", text.notImported, current === ""));
        fields.forEach((f) => select.appendChild(option(f.name, f.label + " (" + f.name + ")", f.name === current)));
        select.addEventListener("change", markDirty);
        cell(tr, select);
        fieldsBody.appendChild(tr);
        fieldSelects.push(select);
      });
    }

    function codeLabel(c) { return english ? c.label_en : c.label_zh; }

    function showValues(body) {
      valuesBox.replaceChildren();
      valueSelects = [];
      (body.value_mappings || []).forEach((entry) => {
        const title = document.createElement("h4");
        title.textContent = english ? entry.label_en : entry.label_zh;
        const table = document.createElement("table");
        table.className = "gw-grid gw-values";
        const head = document.createElement("tr");
        [text.valueHeader, text.rowsHeader, text.howHeader, text.codeHeader].forEach((h) => {
          const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
        });
        const thead = document.createElement("thead"); thead.appendChild(head);
        const tbody = document.createElement("tbody");
        const completed = new Set(entry.codes.filter((c) => c.completed).map((c) => c.code));
        entry.values.forEach((v) => {
          const tr = document.createElement("tr");
          tr.className = "gw-how-" + v.how;
          cell(tr, v.raw === null ? text.empty : v.raw);
          cell(tr, fill(text.rows, { count: v.count }));
          const howCell = cell(tr, how[v.how] || v.how);
          const select = document.createElement("select");
          entry.codes.forEach((c) => select.appendChild(option(c.code, codeLabel(c), c.code === v.code)));
          select.disabled = v.raw === null;  // empty values take the layer's default
          select.dataset.field = entry.field;
          select.dataset.raw = v.raw === null ? "" : v.raw;
          select.dataset.initial = v.code || "";
          select.dataset.manual = v.how === "manual" ? "1" : "";
          const warn = document.createElement("div");
          warn.className = "gw-warn";
          const checkQualified = () => {
            warn.textContent = v.qualified && completed.has(select.value) ? text.qualifiedDone : "";
          };
          select.addEventListener("change", () => { checkQualified(); markDirty(); });
          const codeCell = cell(tr, select);
          codeCell.appendChild(warn);
          checkQualified();
          if (v.suggestion) {
            const hint = document.createElement("button");
            hint.type = "button";
            hint.className = "linklike";
            const target = entry.codes.find((c) => c.code === v.suggestion);
            hint.textContent = fill(text.suggestion, { code: target ? codeLabel(target) : v.suggestion }) + " · " + text.useSuggestion;
            hint.addEventListener("click", () => { select.value = v.suggestion; checkQualified(); markDirty(); });
            howCell.appendChild(document.createElement("br"));
            howCell.appendChild(hint);
          }
          tbody.appendChild(tr);
          valueSelects.push(select);
        });
        table.append(thead, tbody);
        valuesBox.append(title, table);
        const hidden = entry.distinct - entry.listed;
        if (hidden > 0) {
          const p = document.createElement("p");
          p.textContent = fill(text.moreValues, { count: hidden, rows: entry.more_rows });
          valuesBox.appendChild(p);
        }
      });
    }

    function show(body) {
      shownLayer = body.layer;
      dirty = false;
      dirtyNote.hidden = true;
      box.hidden = false;
      showFields(body);
      showValues(body);
      rememberBox.hidden = !cfg.admin || !(body.value_mappings || []).length;
    }

    /* The form fields a re-read sends: both mappings whole, when anything was changed or given. */
    function append(data) {
      if (form.elements.layer.value !== shownLayer) return;  // another layer: its own mappings
      if (!dirty && !valueSelects.some((s) => s.dataset.manual)) return;
      const fields = {};
      fieldSelects.forEach((s) => { fields[s.dataset.column] = s.value; });
      data.append("field_map", JSON.stringify(fields));
      const values = valueSelects
        .filter((s) => !s.disabled && (s.value !== s.dataset.initial || s.dataset.manual))
        .map((s) => [s.dataset.field, s.dataset.raw, s.value]);
      data.append("value_map", JSON.stringify(values));
      if (cfg.admin) data.append("remember", remember.checked ? "1" : "0");
    }

    function clear() { box.hidden = true; dirty = false; dirtyNote.hidden = true; }

    return { show, append, clear };
  })();

  /* The preview map: accepted features over the unit grid, on the same base map as the main map;
     the map, its base map and the unit outlines come from the shared map module. */
  const preview = (function () {
    const core = window.gridwatch.mapcore;
    const box = document.getElementById("gw-preview");
    const note = document.getElementById("gw-preview-note");
    const colour = (cls) => getComputedStyle(document.querySelector(".gw-swatch." + cls)).backgroundColor;
    const state = { map: null, grid: null, features: null, loaded: 0 };
    let asked = 0;
    let loadGrid = () => {};

    function tooltip(props) {
      const span = document.createElement("span");
      span.textContent = props.inside ? text.unit + ": " + props.unit : text.unassigned;
      return span;
    }

    function ensureMap() {
      if (state.map) return state.map;
      const inside = colour("gw-inside");
      const outside = colour("gw-outside");
      const map = core.open();
      const outlines = core.unitOutlines(map, "&" + langParam);
      state.grid = outlines.layer;
      loadGrid = outlines.load;
      state.features = L.geoJSON(null, {
        pointToLayer: (f, latlng) => L.circleMarker(latlng, {
          radius: 4, weight: 1, color: "#333", fillOpacity: 0.9, fillColor: f.properties.inside ? inside : outside,
        }),
        style: (f) => ({ color: f.properties.inside ? inside : outside, weight: 1.5, fillOpacity: 0.4 }),
        onEachFeature: (f, layer) => layer.bindTooltip(() => tooltip(f.properties)),
      }).addTo(map);
      map.on("moveend", loadGrid);
      state.map = map;
      return map;
    }

    function boundsOf(boxes) {
      let bounds = null;
      boxes.filter(Boolean).forEach((b) => {
        const part = L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
        bounds = bounds ? bounds.extend(part) : part;
      });
      return bounds;
    }

    function draw(data) {
      box.hidden = false;
      const map = ensureMap();
      map.invalidateSize();
      state.features.clearLayers();
      state.features.addData(data);
      state.loaded += 1;
      const parts = [
        fill(text.shown, { sent: data.sent, total: data.total }),
        fill(text.insideOutside, { inside: data.inside, outside: data.outside }),
      ];
      if (data.as_points) parts.push(text.asPoints);
      if (core.config.baseError) parts.push(core.config.baseError);
      note.textContent = parts.join(" · ");
      const bounds = boundsOf([data.bbox, data.grid_bbox]);
      if (bounds) map.fitBounds(bounds, { padding: [12, 12], maxZoom: 18, animate: false }); // moveend: loadGrid
      else loadGrid();
    }

    function load() {
      if (!uploadId) return;
      const mine = ++asked;
      box.hidden = false;
      note.textContent = text.loading;
      fetch(uploadUrl("/features") + core.crsParam)
        .then((r) => r.json().then((body) => ({ status: r.status, body })))
        .then(({ status, body }) => {
          if (mine !== asked) return; // a newer read is on its way
          if (status >= 400) {
            if (state.features) state.features.clearLayers();
            note.textContent = body.message || text.error;
            return;
          }
          draw(body);
        })
        .catch(() => { if (mine === asked) note.textContent = text.network; });
    }

    function clear() {
      asked += 1;
      if (state.features) state.features.clearLayers();
      box.hidden = true;
    }

    window.gridwatchUpload = state;
    return { load, clear };
  })();

  /* A grid upload may be dated: the day its version is in force from (empty: the import day). */
  const validFrom = document.getElementById("gw-valid-from");
  function isGrid() {
    const option = form.elements.layer.selectedOptions[0];
    return Boolean(option && option.dataset.grid);
  }
  function showValidFrom() { validFrom.hidden = !isGrid(); }
  form.elements.layer.addEventListener("change", showValidFrom);
  showValidFrom();
  function withValidFrom(data) {
    if (isGrid() && form.elements.valid_from.value) data.append("valid_from", form.elements.valid_from.value);
    return data;
  }

  function options() {
    const data = new FormData();
    ["layer", "encoding", "crs", "member"].forEach((k) => data.append(k, form.elements[k].value));
    return withValidFrom(data);
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!chosen) { report.hidden = false; say(text.chooseFile, false); return; }
    const data = options();
    data.append("file", chosen, chosen.name);
    uploadId = null;
    send(uploadUrl(), data, show);
  });
  document.getElementById("gw-reread").addEventListener("click", () => {
    if (!uploadId) return;
    const data = options();
    mapping.append(data);
    send(uploadUrl("/preview"), data, show);
  });
  commitButton.addEventListener("click", () => {
    if (!uploadId) return;
    send(uploadUrl("/commit"), withValidFrom(new FormData()), (status, body) => {
      if (status >= 400) { say(body.message || text.error, false); return; }
      uploadId = null;
      commitButton.disabled = true;
      say(fill(body.mappings_remembered ? text.imported2 : text.imported,
        { batch: body.batch_id, added: body.added, updated: body.updated, remembered: body.mappings_remembered }), true);
      showOnward();
    });
  });
  /* After a commit: links onward to the map, the statistics and the batches of that layer, as of today. */
  function showOnward() {
    const links = cfg.links;
    const layer = isGrid() ? "" : form.elements.layer.value;
    const query = (args) => "?" + new URLSearchParams(Object.entries(args).filter(([, v]) => v)).toString();
    document.getElementById("gw-onward-map").href = links.map + query({ layer, as_of: links.today });
    document.getElementById("gw-onward-stats").href = links.stats + query({ layer, as_of: links.today });
    document.getElementById("gw-onward-batches").href = links.batches + query({ layer: form.elements.layer.value });
    document.getElementById("gw-onward").hidden = false;
  }
  document.getElementById("gw-discard").addEventListener("click", () => {
    if (!uploadId) return;
    fetch(uploadUrl(), { method: "DELETE", headers: { "X-CSRFToken": csrfToken } }).then(() => { uploadId = null; report.hidden = true; preview.clear(); mapping.clear(); });
  });
})();
