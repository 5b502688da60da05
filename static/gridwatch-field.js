/* gridwatch field page (/field): the features near the phone -- its position from the browser
   (WGS-84; on plain HTTP browsers give none, so a point tapped on the map or a photo's EXIF
   position serves instead) -- listed nearest first and drawn on a small map; a feature's sheet
   with its fields, photos and the edit form (gridwatch-edit.js); a new site added at the
   position.  Answers are small (GET /api/features/near); every failed request says so and
   offers to try again.  The sheet is a step in the browser's history: the phone's Back button
   (or the sheet's own) closes it, back to the list, and stays on the page.  Reads the map config block (gridwatch-mapcore.js) with its `field`
   member: the near route, each layer's statuses and the page's words. */
(function () {
  "use strict";
  const core = window.gridwatch.mapcore;
  const edit = window.gridwatch.edit;
  const cfg = core.config;
  const F = cfg.field;
  const W = F.labels;
  const el = core.el;
  const specs = {};
  cfg.layers.forEach((s) => { specs[s.name] = s; });

  const $ = (id) => document.getElementById(id);
  const where = $("gw-field-where"), list = $("gw-field-list"), count = $("gw-field-count");
  const layerBox = $("gw-field-layer"), statusBox = $("gw-field-status"), radiusBox = $("gw-field-radius");
  const sheet = $("gw-field-sheet"), sheetBody = $("gw-field-sheet-body"), sheetTitle = $("gw-field-sheet-title");
  const listBox = $("gw-field-list-box");

  /* --- GCJ-02 (a Gaode base map): positions from the phone are WGS-84 ------------------------ */
  const A = 6378245.0, EE = 0.00669342162296594323;
  function shiftOf(lon, lat) {
    const x = lon - 105, y = lat - 35;
    let dLat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    dLat += ((20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2) / 3;
    dLat += ((20 * Math.sin(y * Math.PI) + 40 * Math.sin((y / 3) * Math.PI)) * 2) / 3;
    dLat += ((160 * Math.sin((y / 12) * Math.PI) + 320 * Math.sin((y * Math.PI) / 30)) * 2) / 3;
    let dLon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    dLon += ((20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2) / 3;
    dLon += ((20 * Math.sin(x * Math.PI) + 40 * Math.sin((x / 3) * Math.PI)) * 2) / 3;
    dLon += ((150 * Math.sin((x / 12) * Math.PI) + 300 * Math.sin((x / 30) * Math.PI)) * 2) / 3;
    const rad = (lat / 180) * Math.PI;
    let magic = Math.sin(rad);
    magic = 1 - EE * magic * magic;
    const sq = Math.sqrt(magic);
    return [(dLon * 180) / ((A / sq) * Math.cos(rad) * Math.PI), (dLat * 180) / (((A * (1 - EE)) / (magic * sq)) * Math.PI)];
  }
  function toMap(lon, lat) { // WGS-84 → the map's coordinates
    if (!cfg.gcj02) return [lon, lat];
    const [dx, dy] = shiftOf(lon, lat);
    return [lon + dx, lat + dy];
  }
  function toWgs(lon, lat) { // the map's coordinates → WGS-84 (fixed-point, centimetres)
    if (!cfg.gcj02) return [lon, lat];
    let w = [lon, lat];
    for (let i = 0; i < 6; i++) {
      const g = toMap(w[0], w[1]);
      w = [w[0] - (g[0] - lon), w[1] - (g[1] - lat)];
    }
    return w;
  }

  /* --- the map ----------------------------------------------------------------------------- */
  const map = core.open();
  const b = F.bounds;
  if (b && b.every((v) => isFinite(v))) map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { animate: false });
  else map.setView([35, 105], 4);
  const drawn = L.layerGroup().addTo(map);
  let here = null; // the position's marker
  let position = null; // {lon, lat} in the map's coordinates, and its source
  let current = []; // the features listed

  function fillStatuses() {
    const chosen = layerBox.value;
    const seen = new Map();
    cfg.layers.filter((s) => !chosen || s.name === chosen).forEach((s) => {
      (F.statuses[s.name] || []).forEach((code) => {
        const st = s.statuses.find((x) => x.code === code);
        if (!seen.has(code)) seen.set(code, st ? st.label : code);
      });
    });
    const keep = statusBox.value;
    statusBox.replaceChildren(statusBox.options[0]);
    seen.forEach((text, code) => {
      const o = el("option", text);
      o.value = code;
      statusBox.appendChild(o);
    });
    statusBox.value = seen.has(keep) ? keep : "";
  }

  function say(text, retry) {
    where.replaceChildren(el("span", text));
    if (retry) {
      const btn = el("button", W.retry, "gw-field-retry");
      btn.type = "button";
      btn.addEventListener("click", retry);
      where.appendChild(document.createTextNode(" "));
      where.appendChild(btn);
    }
  }

  function distance(m) {
    return m >= 1000 ? W.km.replace("{km}", (m / 1000).toFixed(1)) : W.metres.replace("{m}", Math.round(m));
  }

  function setPosition(lon, lat, source, accuracy) {
    position = { lon, lat, source };
    const latlng = [lat, lon];
    if (here) here.setLatLng(latlng);
    else here = L.circleMarker(latlng, { radius: 9, color: "#fff", weight: 3, fillColor: "#1a73e8", fillOpacity: 1 }).addTo(map);
    map.setView(latlng, Math.max(map.getZoom(), 16), { animate: false });
    const text = source === "gps" ? W.located.replace("{m}", Math.round(accuracy || 0))
      : source === "photo" ? W.fromPhoto : W.tapped;
    say(text + " · " + lat.toFixed(6) + ", " + lon.toFixed(6));
    load();
  }

  function locate() {
    if (!window.isSecureContext || !navigator.geolocation) {
      say(W.noGeoHttps);
      return;
    }
    say(W.locating);
    navigator.geolocation.getCurrentPosition(
      (p) => {
        const [lon, lat] = toMap(p.coords.longitude, p.coords.latitude);
        setPosition(lon, lat, "gps", p.coords.accuracy);
      },
      (err) => say(W.noGeo.replace("{reason}", err.message || String(err.code))),
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 30000 },
    );
  }

  function statusLook(spec, code) {
    const st = spec.statuses.find((s) => s.code === code);
    return { color: (spec.colors || {})[code] || spec.color, label: st ? st.label : code || "—" };
  }

  function load() {
    if (!position) { say(W.noPosition); return; }
    const q = new URLSearchParams({
      lon: position.lon.toFixed(7), lat: position.lat.toFixed(7), radius: radiusBox.value, limit: "50",
    });
    if (layerBox.value) q.set("layer", layerBox.value);
    if (statusBox.value) q.set("status", statusBox.value);
    if (cfg.gcj02) q.set("crs", "gcj02");
    count.textContent = W.loading;
    list.setAttribute("aria-busy", "true");
    edit.send("GET", F.near + "?" + q.toString(), null, 20000).then((answer) => {
      list.removeAttribute("aria-busy");
      if (!answer.ok) {
        count.textContent = "";
        say(edit.message(answer.body, W.network), answer.status >= 500 ? load : null);
        return;
      }
      show(answer.body);
    }, () => {
      list.removeAttribute("aria-busy");
      count.textContent = "";
      say(W.network, load);
    });
  }

  function idOf(f) { return f.id !== undefined ? f.id : f.fid; }

  function show(answer) {
    current = answer.features;
    list.replaceChildren();
    drawn.clearLayers();
    count.textContent = answer.total ? W.nearby.replace("{radius}", answer.radius).replace("{total}", answer.total) : W.none;
    answer.features.forEach((f) => {
      const spec = specs[f.layer];
      const look = statusLook(spec, f.status);
      const li = el("li", null, "gw-field-item");
      const btn = el("button", null, "gw-field-open");
      btn.type = "button";
      btn.dataset.layer = f.layer;
      btn.dataset.id = idOf(f);
      const name = el("span", f.label.length ? f.label[0] : W.noLabel, "gw-field-name");
      const more = el("span", [spec.label, ...f.label.slice(1)].join(" · "), "gw-field-more");
      const chip = el("span", look.label, "gw-field-status");
      chip.dataset.color = look.color;
      const dot = el("i", null, "gw-field-dot");
      dot.style.backgroundColor = look.color;
      chip.prepend(dot);
      btn.append(name, el("span", distance(f.distance), "gw-field-distance"), more, chip);
      btn.addEventListener("click", () => openSheet(f.layer, idOf(f)));
      li.appendChild(btn);
      list.appendChild(li);
      const m = L.circleMarker([f.lat, f.lon], { radius: 7, weight: 1, color: "#333", fillColor: look.color, fillOpacity: 0.9 });
      m.on("click", () => openSheet(f.layer, idOf(f)));
      drawn.addLayer(m);
    });
  }

  /* --- a feature's sheet ---------------------------------------------------------------------- */
  // the sheet open is a history entry of its own (pushed as it opens over the list, not again
  // as it is drawn anew after a save): Back pops it and closes the sheet
  function showSheet(title) {
    sheetTitle.textContent = title;
    sheetBody.replaceChildren(el("p", W.loading));
    if (sheet.hidden) history.pushState({ gwFieldSheet: true }, "");
    listBox.hidden = true;
    sheet.hidden = false;
    window.scrollTo(0, 0);
  }

  function closeSheet() {
    if (sheet.hidden) return;
    sheet.hidden = true;
    listBox.hidden = false;
    load();
  }

  /* The sheet's own back button: the history entry the sheet pushed goes too. */
  function back() {
    if (history.state && history.state.gwFieldSheet) history.back(); // closed by popstate
    else closeSheet();
  }

  function photos(layer, id, box) {
    edit.send("GET", cfg.api + "/features/" + layer + "/" + id + "/photos", null, 20000).then((answer) => {
      if (!answer.ok || !answer.body.photos.length) return;
      const strip = el("div", null, "gw-photos");
      strip.appendChild(el("div", W.photos + " (" + answer.body.photos.length + ")", "gw-photos-title"));
      answer.body.photos.forEach((p) => {
        const a = el("a", null, "gw-photo");
        a.href = p.url;
        a.target = "_blank";
        a.rel = "noopener";
        const img = el("img");
        img.src = p.thumb_url;
        img.alt = p.note || W.photos;
        img.loading = "lazy";
        a.appendChild(img);
        strip.appendChild(a);
      });
      box.appendChild(strip);
    }, () => {});
  }

  /* The sheet of feature `id` of `layer`; `said` (e.g. "saved") shown in its form. */
  function openSheet(layer, id, said) {
    const spec = specs[layer];
    showSheet(spec.label);
    const q = cfg.gcj02 ? "?crs=gcj02" : "";
    edit.send("GET", cfg.api + "/features/" + layer + "/" + id + q, null, 20000).then((answer) => {
      if (!answer.ok) {
        sheetBody.replaceChildren(el("p", edit.message(answer.body, W.network), "gw-edit-error"));
        return;
      }
      const props = Object.assign({}, answer.body.properties);
      if (props.id === undefined) props.id = props.fid;
      if (props.version === undefined) props.version = 1;
      const first = (spec.fields[0] && props[spec.fields[0].name]) || W.noLabel;
      sheetTitle.textContent = spec.label + " · " + first;
      sheetBody.replaceChildren();
      const form = edit.form({
        layer, props, photo: true,
        onSaved: () => { load(); setTimeout(() => { if (!sheet.hidden) openSheet(layer, props.id, edit.config.labels.saved); }, 600); },
        onReload: () => openSheet(layer, id),
      });
      if (form) sheetBody.appendChild(form);
      if (form && said) form.gwSay(said, "ok");
      const facts = el("details", null, "gw-field-facts");
      facts.open = !form;
      facts.appendChild(el("summary", W.details));
      facts.appendChild(core.featurePopup(spec, props));
      sheetBody.appendChild(facts);
      photos(layer, props.id, sheetBody);
    }, () => {
      sheetBody.replaceChildren(el("p", W.network, "gw-edit-error"));
      const retry = el("button", W.retry, "gw-field-retry");
      retry.type = "button";
      retry.addEventListener("click", () => openSheet(layer, id));
      sheetBody.appendChild(retry);
    });
  }

  function addHere() {
    if (!position) { say(W.noPosition); return; }
    const layer = $("gw-field-add-layer").value;
    const spec = specs[layer];
    showSheet(W.addTitle.replace("{layer}", spec.label));
    const [lon, lat] = toWgs(position.lon, position.lat);
    sheetBody.replaceChildren(el("p", lat.toFixed(6) + ", " + lon.toFixed(6), "gw-field-coords"));
    const form = edit.form({
      layer, add: { lon, lat }, photo: true,
      onSaved: (result) => { load(); setTimeout(() => { if (!sheet.hidden) openSheet(layer, result.id, edit.config.labels.added); }, 600); },
    });
    if (form) sheetBody.appendChild(form);
  }

  $("gw-locate").addEventListener("click", locate);
  $("gw-field-back").addEventListener("click", back);
  window.addEventListener("popstate", closeSheet);
  if (history.state && history.state.gwFieldSheet) history.replaceState(null, ""); // a reload shows the list
  $("gw-field-add").addEventListener("click", addHere);
  layerBox.addEventListener("change", () => { fillStatuses(); if (position) load(); });
  statusBox.addEventListener("change", () => { if (position) load(); });
  radiusBox.addEventListener("change", () => { if (position) load(); });
  map.on("click", (e) => setPosition(e.latlng.lng, e.latlng.lat, "tap"));
  $("gw-field-photo-pos").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (!file) return;
    edit.photoPosition(file).then((p) => {
      if (!p) { say(W.photoNoPosition); return; }
      const [lon, lat] = toMap(p.lon, p.lat);
      setPosition(lon, lat, "photo");
    });
  });
  fillStatuses();
  window.gridwatchField = { map, load, locate, openSheet, setPosition, features: () => current, position: () => position };
  if (window.isSecureContext && navigator.geolocation) locate();
  else say(W.noGeoHttps);
})();
