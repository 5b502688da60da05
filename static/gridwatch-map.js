/* gridwatch map: loads what the viewport shows from the JSON API (unit outlines with their
   figures, survey features one by one or clustered) instead of embedding layers in the page.
   All text from survey data is put into the page with textContent, never as HTML. */
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("gw-config").textContent);
  const map = window[cfg.mapName];
  const crsParam = cfg.gcj02 ? "&crs=gcj02" : "";
  const palette = ["#d73027", "#fc8d59", "#fee08b", "#d9ef8b", "#91cf60", "#1a9850"];

  function colorFor(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "#dddddd";
    const v = Math.max(0, Math.min(1, value));
    return palette[Math.min(palette.length - 1, Math.round(v * (palette.length - 1)))];
  }

  function metricValue(props) {
    const p = cfg.layer;
    switch (cfg.metric) {
      case "completed": return props[p + "_completed"] / Math.max(1, cfg.maxCompleted || 1);
      case "progress": return props[p + "_completed_progress"];
      default: return props[p + "_rate"];
    }
  }

  function bboxParam() {
    const b = map.getBounds();
    const w = Math.max(-180, b.getWest()), s = Math.max(-90, b.getSouth());
    const e = Math.min(180, b.getEast()), n = Math.min(90, b.getNorth());
    return [w, s, e, n].map((v) => v.toFixed(6)).join(",");
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function table(rows) {
    const t = el("table", null, "gw-props");
    rows.forEach(([k, v]) => {
      const tr = document.createElement("tr");
      tr.appendChild(el("th", k));
      tr.appendChild(el("td", v === null || v === undefined ? "—" : v));
      t.appendChild(tr);
    });
    return t;
  }

  function cellFigures(props) {
    const p = cfg.layer;
    const rate = props[p + "_rate"];
    return [
      [cfg.labels.code, props.code],
      [cfg.labels.name, props.name],
      [cfg.labels.total, props[p + "_total"]],
      [cfg.labels.completed, props[p + "_completed"]],
      [cfg.labels.rate, rate === null || rate === undefined ? "—" : (rate * 100).toFixed(1) + "%"],
    ];
  }

  const cells = L.geoJSON(null, {
    style: (f) => ({ color: "#555", weight: 0.6, fillOpacity: 0.6, fillColor: colorFor(metricValue(f.properties)) }),
    onEachFeature: (f, layer) => {
      layer.bindTooltip(() => table(cellFigures(f.properties)), { sticky: true });
      layer.on("click", () => showUnit(f.properties));
    },
  }).addTo(map);

  const overlays = {};
  cfg.surveyLayers.forEach((s) => {
    overlays[s.name] = L.layerGroup();
    if (s.on) overlays[s.name].addTo(map);
  });
  const control = L.control.layers(null, null, { collapsed: false }).addTo(map);
  control.addOverlay(cells, cfg.labels.cells);
  cfg.surveyLayers.forEach((s) => control.addOverlay(overlays[s.name], s.label));

  function featurePopup(spec, props) {
    const rows = spec.fields.map((f) => [f.label, props[f.name]]);
    rows.push([cfg.labels.unit, props.unit]);
    return table(rows);
  }

  function drawFeatures(spec, data) {
    const group = overlays[spec.name];
    group.clearLayers();
    if (data.aggregated) {
      data.features.forEach((f) => {
        const [lon, lat] = f.geometry.coordinates;
        const n = f.properties.count;
        const icon = L.divIcon({ className: "gw-cluster", html: "", iconSize: [34, 34] });
        const marker = L.marker([lat, lon], { icon });
        marker.on("add", () => {
          const box = marker.getElement();
          if (box) box.textContent = String(n);
        });
        marker.bindTooltip(() => table([[cfg.labels.total, n], [cfg.labels.completed, f.properties.completed]]));
        group.addLayer(marker);
      });
      return;
    }
    const layer = L.geoJSON(data, {
      pointToLayer: (f, latlng) => L.circleMarker(latlng, {
        radius: spec.radius, weight: 1, color: "#333", fillOpacity: 0.85,
        fillColor: spec.colors[f.properties.status] || spec.color,
      }),
      style: (f) => ({ color: spec.colors[f.properties.status] || spec.color, weight: 1, fillOpacity: 0.5 }),
      onEachFeature: (f, l) => {
        l.bindPopup(cfg.labels.loading);
        l.on("popupopen", () => {
          fetch(cfg.api + "/features/" + spec.name + "/" + f.properties.fid + (cfg.gcj02 ? "?crs=gcj02" : ""))
            .then((r) => r.json())
            .then((full) => l.setPopupContent(featurePopup(spec, full.properties)));
        });
      },
    });
    group.addLayer(layer);
  }

  let pending = null;
  function refresh() {
    if (pending) pending.abort();
    pending = new AbortController();
    const signal = pending.signal;
    const zoom = map.getZoom();
    const common = "&zoom=" + zoom + "&bbox=" + bboxParam() + (cfg.asOf ? "&as_of=" + cfg.asOf : "") + crsParam;
    fetch(cfg.api + "/cells?level=" + cfg.level + "&layer=" + cfg.layer + common + (cfg.within ? "&within=" + encodeURIComponent(cfg.within) : ""), { signal })
      .then((r) => r.json())
      .then((data) => {
        cells.clearLayers();
        const note = document.getElementById("gw-note");
        note.textContent = data.too_many ? cfg.labels.tooMany.replace("{n}", data.too_many) : "";
        cells.addData(data);
      })
      .catch(() => {});
    cfg.surveyLayers.forEach((spec) => {
      if (!map.hasLayer(overlays[spec.name])) return;
      const status = (cfg.status ? "&status=" + encodeURIComponent(cfg.status) : "") +
        (cfg.within ? "&within=" + encodeURIComponent(cfg.within) : "");
      fetch(cfg.api + "/features/" + spec.name + "?" + common.slice(1) + status, { signal })
        .then((r) => r.json())
        .then((data) => drawFeatures(spec, data))
        .catch(() => {});
    });
  }

  function showUnit(props) {
    const panel = document.getElementById("gw-panel");
    panel.replaceChildren(el("h3", props.name || props.code), table(cellFigures(props)));
    if (cfg.level !== "grid") return;
    const spec = cfg.surveyLayers.find((s) => s.name === cfg.layer);
    fetch(cfg.api + "/features/" + cfg.layer + "?zoom=18&detail=1&bbox=-180,-90,180,90&unit=" + encodeURIComponent(props.code) + crsParam)
      .then((r) => r.json())
      .then((data) => {
        const list = el("ol", null, "gw-list");
        data.features.forEach((f) => {
          const item = el("li");
          item.appendChild(featurePopup(spec, f.properties));
          list.appendChild(item);
        });
        panel.appendChild(el("p", cfg.labels.features.replace("{n}", data.total)));
        panel.appendChild(list);
      });
  }

  map.on("moveend", refresh);
  map.on("overlayadd", refresh);
  refresh();
  window.gridwatchMap = { refresh, cells, overlays };
})();
