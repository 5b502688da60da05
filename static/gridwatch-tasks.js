/* Tasks page (交办单): figures, the list, one task's items with fix / verify / return, a new task
   with its features chosen on a map (a drawn rectangle or polygon, clicks) and previewed. */
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

  // choosing the features on a map ---------------------------------------------------------------
  /* The new task's map: the chosen layer's features of the account's area, coloured by status as on
     the main map.  A rectangle or polygon drawn with Leaflet-Geoman (its public map.pm API, no
     toolbar of its own: the page's buttons) chooses the features inside it, together with the
     status and area fields; a click on a feature adds it or takes it out.  Each change asks the
     server for a dry run of the same body (POST /api/tasks/preview): what is counted, listed and
     highlighted is exactly what 交办 then hands over. */
  const mc = window.gridwatch.mapcore;
  const pick = mc.config.select;
  const map = mc.open();
  const bounds = mc.config.bounds;
  if (bounds && bounds.every(Number.isFinite)) map.fitBounds([[bounds[1], bounds[0]], [bounds[3], bounds[2]]]);
  else map.setView([31.3, 118.4], 13);
  map.pm.setLang(lang === "zh" ? "zh" : "en");
  const drawOptions = { snappable: false, allowSelfIntersection: false, continueDrawing: false };
  const overlays = {};
  config.layers.forEach((l) => { overlays[l.name] = L.featureGroup(); });
  const outline = L.featureGroup().addTo(map); // the drawn shape, under the features
  let shown = null; // the overlay on the map
  let shape = null; // the drawn GeoJSON geometry, in the map's coordinates
  const toggled = new Map(); // fid -> true (added by a click) or false (taken out)
  let baseFids = []; // what the shape and the fields choose, before the clicks
  let selected = new Set(); // fids the preview takes
  const markers = new Map(); // fid -> drawn layer
  let asked = 0;

  function specOf(name) {
    return mc.config.layers.find((s) => s.name === name);
  }

  function look(layer, fid) {
    const on = selected.has(fid);
    return { color: on ? "#0b3d91" : "#333", weight: on ? 2 : 1 };
  }

  function restyle() {
    markers.forEach((l, fid) => l.setStyle(look(l, fid)));
  }

  /* The features the preview takes, ringed at the positions it gives, above the features and their
     clusters (a zoomed-out map draws clusters: each feature taken is still marked); clicks go
     through to the features. */
  const ringPane = map.createPane("gwPicked");
  ringPane.style.zIndex = 650;
  ringPane.style.pointerEvents = "none";
  const ringRenderer = L.canvas({ pane: "gwPicked" });
  const rings = L.layerGroup().addTo(map);

  let clustered = false; // the map draws clusters: each feature taken is a dot, else a ring
  let lastAnswer = null;
  function drawRings(answer) {
    lastAnswer = answer;
    rings.clearLayers();
    const spec = specOf(layerSelect.value);
    const style = clustered
      ? { radius: 2.5, stroke: false, fill: true, fillColor: "#0b3d91", fillOpacity: 0.9 }
      : { radius: (spec ? spec.radius : 5) + 4, color: "#0b3d91", weight: 2.5, fill: false };
    answer.ids.forEach((one) => {
      if (!one.at) return;
      rings.addLayer(L.circleMarker([one.at[1], one.at[0]], {
        renderer: ringRenderer, pane: "gwPicked", interactive: false, ...style,
      }));
    });
  }

  function drawFeatures(data) {
    const spec = specOf(layerSelect.value);
    const group = overlays[spec.name];
    markers.clear();
    if (Boolean(data.aggregated) !== clustered) {
      clustered = Boolean(data.aggregated);
      if (lastAnswer) drawRings(lastAnswer);
    }
    if (data.aggregated) {
      mc.drawFeatures(map, group, spec, data); // clusters: zoom in to pick one by one
      return;
    }
    group.clearLayers();
    const layer = L.geoJSON(data, {
      pointToLayer: (f, latlng) => mc.shapeMarker(map, latlng, {
        radius: spec.radius, fillOpacity: 0.85, fillColor: spec.colors[f.properties.status] || spec.color,
        ...mc.shapeOf(spec, f.properties), ...look(null, f.properties.fid),
      }),
      style: (f) => (f.geometry.type === "Point" ? {}
        : { fillColor: spec.colors[f.properties.status] || spec.color, fillOpacity: 0.5, ...look(null, f.properties.fid) }),
      onEachFeature: (f, l) => {
        markers.set(f.properties.fid, l);
        l.on("click", (e) => {
          L.DomEvent.stop(e);
          if (map.pm.globalDrawModeEnabled()) return;
          togglePick(f.properties.fid);
        });
      },
    });
    group.addLayer(layer);
  }

  let loading = null;
  function loadFeatures() {
    const spec = specOf(layerSelect.value);
    if (!spec) return;
    if (shown !== overlays[spec.name]) {
      if (shown) map.removeLayer(shown);
      shown = overlays[spec.name].addTo(map);
      map.fire("overlayadd"); // the legend follows
    }
    if (loading) loading.abort();
    loading = new AbortController();
    const url = mc.config.api + "/features/" + encodeURIComponent(spec.name) + "?bbox=" + mc.bboxParam(map)
      + "&zoom=" + Math.round(map.getZoom()) + mc.crsParam;
    fetch(url, { signal: loading.signal, headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => { if (data) drawFeatures(data); })
      .catch(() => {});
  }
  mc.legend(map, overlays);
  map.on("moveend", loadFeatures);

  function startDrawing(kind) {
    map.pm.disableDraw();
    map.pm.enableDraw(kind, drawOptions);
  }
  $("gw-task-draw-rect").addEventListener("click", () => startDrawing("Rectangle"));
  $("gw-task-draw-poly").addEventListener("click", () => startDrawing("Polygon"));
  $("gw-task-draw-clear").addEventListener("click", () => {
    map.pm.disableDraw();
    clearPicks();
    refresh();
  });
  map.on("pm:create", (e) => {
    // kept as a plain, non-interactive polygon: clicks inside it reach the features
    shape = e.layer.toGeoJSON().geometry;
    map.removeLayer(e.layer);
    outline.clearLayers();
    outline.addLayer(L.polygon(e.layer.getLatLngs(), {
      interactive: false, color: "#0b3d91", weight: 2, dashArray: "6 4", fillOpacity: 0.06,
    }));
    toggled.clear();
    refresh();
  });

  function clearPicks() {
    shape = null;
    outline.clearLayers();
    toggled.clear();
  }

  function togglePick(fid) {
    const wanted = !selected.has(fid);
    if (baseFids.includes(fid) === wanted) toggled.delete(fid);
    else toggled.set(fid, wanted);
    refresh();
  }

  // feature numbers or survey ids (案件编号 …): the server looks the survey ids up
  function typedIds(f) {
    return f.ids.value.split(/[,，、\s]+/).filter(Boolean).map((v) => (/^\d+$/.test(v) ? Number(v) : v));
  }

  function target(f) {
    const t = {};
    if (f.area.value.trim()) t.area = f.area.value;
    if (f.assignee.value.trim()) t.assignee = f.assignee.value.trim();
    return t;
  }

  /* What the drawn shape and the fields choose (null: nothing chosen). */
  function baseSelection(f) {
    const ids = typedIds(f);
    if (!shape && ids.length) return { features: ids.map((id) => ({ layer: f.layer.value, id })) };
    const sel = { layer: f.layer.value };
    if (f.within.value.trim()) sel.within = f.within.value.trim();
    if (f.status.value) sel.status = [f.status.value];
    if (shape) {
      sel.shape = shape;
      sel.crs = mc.config.gcj02 ? "gcj02" : "wgs84";
    }
    return shape || sel.within || sel.status ? sel : null;
  }

  /* The selection sent: the base one, or with clicks the features it took plus and minus them. */
  function selection(f) {
    if (!toggled.size) return baseSelection(f);
    const fids = new Set(baseFids);
    toggled.forEach((on, fid) => (on ? fids.add(fid) : fids.delete(fid)));
    return { features: Array.from(fids).sort((a, b) => a - b).map((id) => ({ layer: f.layer.value, id })) };
  }

  const EMPTY = { count: 0, ids: [], items: [], more: 0, too_many: false, limit: 0 };

  function showPreview(answer, note) {
    const count = $("gw-task-count");
    const table = $("gw-task-preview-list");
    selected = new Set(answer.ids.map((i) => i.fid));
    restyle();
    drawRings(answer);
    if (note) count.textContent = note;
    else if (answer.too_many) count.textContent = pick.tooMany.replace("{limit}", answer.limit);
    else if (answer.held && answer.held.length) {
      // creation would be refused (already_handed_over): said before the hand-over is asked for
      const name = lang === "en" ? "name_en" : "name_zh";
      const list = answer.held.slice(0, 10).map((h) => h[name] + " (" + h.task + ")").join(lang === "en" ? ", " : "、");
      count.textContent = pick.held.replace("{n}", answer.held.length).replace("{list}", list + (answer.held.length > 10 ? " …" : ""));
    }
    else count.textContent = answer.count ? pick.count.replace("{n}", answer.count) : pick.none;
    count.className = "gw-task-count" + (answer.too_many || (answer.held && answer.held.length) ? " gw-late" : "");
    $("gw-task-picked").textContent = toggled.size ? pick.picked.replace("{n}", toggled.size) : "";
    const spec = specOf(layerSelect.value);
    const rows = answer.items.map((i) => {
      const tr = document.createElement("tr");
      tr.dataset.fid = i.fid;
      cell(tr, i.id);
      cell(tr, i.unit);
      const st = spec && spec.statuses.find((s) => s.code === i.status);
      cell(tr, st ? st.label : i.status);
      return tr;
    });
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = !rows.length;
    $("gw-task-more").textContent = answer.more ? pick.more.replace("{m}", answer.more) : "";
  }

  function ask(body) {
    return call("POST", mc.config.preview + (mc.config.gcj02 ? "?crs=gcj02" : ""), body);
  }

  function refresh() {
    const mine = ++asked;
    const f = form.elements;
    const t = target(f);
    const base = baseSelection(f);
    if (!base && !toggled.size) {
      baseFids = [];
      showPreview(EMPTY, " ");
      return Promise.resolve();
    }
    if (!t.area && !t.assignee) {
      showPreview(EMPTY, pick.needTarget);
      return Promise.resolve();
    }
    const first = base ? ask({ ...t, ...base }) : Promise.resolve(EMPTY);
    return first
      .then((answer) => {
        if (mine !== asked) return null;
        baseFids = answer.ids.map((i) => i.fid);
        if (!toggled.size) return answer;
        const sel = selection(f);
        return sel.features.length ? ask({ ...t, ...sel }) : EMPTY;
      })
      .then((answer) => { if (answer && mine === asked) showPreview(answer); })
      .catch((err) => { if (mine === asked) showPreview(EMPTY, err.message); });
  }

  layerSelect.addEventListener("change", () => {
    toggled.clear();
    loadFeatures();
    refresh();
  });
  ["status", "within", "area", "assignee", "ids"].forEach((name) => {
    form.elements[name].addEventListener("change", () => refresh());
  });

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    if (submit.disabled) return;
    const f = form.elements;
    const body = { title: f.title.value, instructions: f.instructions.value, layer: f.layer.value, ...target(f) };
    body[f.unit.value] = Number(f.n.value);
    Object.assign(body, selection(f) || {});
    busy(submit, call("POST", "/api/tasks", body).then((t) => {
      say(text.created.replace("{number}", t.number), true);
      form.reset();
      fillStatuses();
      clearPicks();
      loadFeatures();
      refresh();
      loadList();
      loadStats();
      showTask(t);
    }).catch((err) => say(err.message, false)));
  });

  loadFeatures();
  refresh();
  loadStats();
  loadList();
})();
