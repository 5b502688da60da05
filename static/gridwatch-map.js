/* gridwatch map page: loads what the viewport shows from the JSON API (unit outlines with their
   figures, survey features one by one or clustered) instead of embedding layers in the page.
   The map, its base map, markers and legend come from the shared map module
   (gridwatch-mapcore.js) and its configuration; this adds the page's choice of level, layer,
   metric and filters.  All text from survey data is put into the page with textContent. */
(function () {
  "use strict";
  const core = window.gridwatch.mapcore;
  const cfg = core.config;
  const { el, table } = core;
  const map = core.open();
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
      case "area": return props[cfg.measureColumn] / (cfg.maxMeasure || 1);
      case "progress": return props[p + "_completed_progress"];
      default: return props[p + "_rate"];
    }
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
    ].concat(cfg.measureColumn && props[cfg.measureColumn] !== undefined ? [[cfg.measureLabel, props[cfg.measureColumn]]] : []);
  }

  const cells = L.geoJSON(null, {
    style: (f) => ({ color: "#555", weight: 0.6, fillOpacity: 0.6, fillColor: colorFor(metricValue(f.properties)) }),
    onEachFeature: (f, layer) => {
      layer.bindTooltip(() => table(cellFigures(f.properties)), { sticky: true });
      layer.on("click", () => showUnit(f.properties));
    },
  }).addTo(map);

  const overlays = {};
  cfg.layers.forEach((s) => {
    overlays[s.name] = L.layerGroup();
    if (s.name === cfg.layer) overlays[s.name].addTo(map);
  });
  const control = L.control.layers(null, null, { collapsed: false }).addTo(map);
  control.addOverlay(cells, cfg.labels.cells);
  cfg.layers.forEach((s) => control.addOverlay(overlays[s.name], s.label));
  const legend = core.legend(map, overlays);

  let pending = null;
  function refresh() {
    if (pending) pending.abort();
    pending = new AbortController();
    const signal = pending.signal;
    const zoom = map.getZoom();
    const common = "&zoom=" + zoom + "&bbox=" + core.bboxParam(map) + (cfg.asOf ? "&as_of=" + cfg.asOf : "") + core.crsParam;
    fetch(cfg.api + "/cells?level=" + cfg.level + "&layer=" + cfg.layer + common + (cfg.within ? "&within=" + encodeURIComponent(cfg.within) : ""), { signal })
      .then((r) => r.json())
      .then((data) => {
        cells.clearLayers();
        const note = document.getElementById("gw-note");
        note.textContent = data.too_many ? cfg.labels.tooMany.replace("{n}", data.too_many) : "";
        cells.addData(data);
        // features stay above the units they lie in (one canvas draws both, in order)
        Object.values(overlays).forEach((group) => group.eachLayer((l) => l.bringToFront && l.bringToFront()));
      })
      .catch(() => {});
    cfg.layers.forEach((spec) => {
      if (!map.hasLayer(overlays[spec.name])) return;
      const status = (cfg.status ? "&status=" + encodeURIComponent(cfg.status) : "") +
        (cfg.within ? "&within=" + encodeURIComponent(cfg.within) : "");
      fetch(cfg.api + "/features/" + spec.name + "?" + common.slice(1) + status, { signal })
        .then((r) => r.json())
        .then((data) => core.drawFeatures(map, overlays[spec.name], spec, data))
        .catch(() => {});
    });
  }

  function showUnit(props) {
    const panel = document.getElementById("gw-panel");
    panel.replaceChildren(el("h3", props.name || props.code), table(cellFigures(props)));
    if (cfg.level !== cfg.levels[0].name) return; // features are listed for a unit grid only
    const spec = cfg.layers.find((s) => s.name === cfg.layer);
    fetch(cfg.api + "/features/" + cfg.layer + "?zoom=18&detail=1&bbox=-180,-90,180,90&unit=" + encodeURIComponent(props.code) + core.crsParam)
      .then((r) => r.json())
      .then((data) => {
        const list = el("ol", null, "gw-list");
        data.features.forEach((f) => {
          const item = el("li");
          item.appendChild(core.featurePopup(spec, f.properties));
          list.appendChild(item);
        });
        panel.appendChild(el("p", cfg.labels.features.replace("{n}", data.total)));
        panel.appendChild(list);
      });
  }

  map.on("moveend", refresh);
  map.on("overlayadd", refresh);
  refresh();
  window.gridwatchMap = { map, refresh, cells, overlays, legend };
})();
