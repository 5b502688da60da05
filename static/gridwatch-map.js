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
      case "area": return props[cfg.measureColumn] / (cfg.maxMeasure || 1);
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
    ].concat(cfg.measureColumn && props[cfg.measureColumn] !== undefined ? [[cfg.measureLabel, props[cfg.measureColumn]]] : []);
  }

  const cells = L.geoJSON(null, {
    style: (f) => ({ color: "#555", weight: 0.6, fillOpacity: 0.6, fillColor: colorFor(metricValue(f.properties)) }),
    onEachFeature: (f, layer) => {
      layer.bindTooltip(() => table(cellFigures(f.properties)), { sticky: true });
      layer.on("click", () => showUnit(f.properties));
    },
  }).addTo(map);

  // Point markers: fill colour by status, shape by the value of the layer's shape field
  // (declared in the layer).  Drawn by the map's renderer (canvas), so thousands stay cheap.
  // Vertices are relative to the marker's centre, in units of its radius; a circle has none.
  const SHAPES = {
    square: [[-0.9, -0.9], [0.9, -0.9], [0.9, 0.9], [-0.9, 0.9]],
    triangle: [[0, -1.45], [1.256, 0.725], [-1.256, 0.725]],
    diamond: [[0, -1.25], [1.25, 0], [0, 1.25], [-1.25, 0]],
  };
  const SHAPE_EXTENT = 1.5; // no vertex lies further out than this many radii
  const UNKNOWN_DASH = "2 2"; // outline of a feature whose shape value is empty or unknown

  function shapePath(shape, x, y, r) {
    const corners = SHAPES[shape];
    if (!corners) return null;
    return "M" + corners.map(([dx, dy]) => (x + dx * r).toFixed(1) + " " + (y + dy * r).toFixed(1)).join("L") + "Z";
  }

  const ShapeMarker = L.CircleMarker.extend({
    options: { shape: "circle" },
    _updateBounds() {
      const r = this._radius * (SHAPES[this.options.shape] ? SHAPE_EXTENT : 1) + this._clickTolerance();
      this._pxBounds = L.bounds(this._point.subtract([r, r]), this._point.add([r, r]));
    },
    _updatePath() {
      const corners = SHAPES[this.options.shape];
      if (!corners) return L.CircleMarker.prototype._updatePath.call(this);
      const renderer = this._renderer;
      const p = this._point, r = this._radius;
      if (renderer instanceof L.Canvas) {
        if (!renderer._drawing || this._empty()) return;
        const ctx = renderer._ctx;
        ctx.beginPath();
        corners.forEach(([dx, dy], i) => (i ? ctx.lineTo(p.x + dx * r, p.y + dy * r) : ctx.moveTo(p.x + dx * r, p.y + dy * r)));
        ctx.closePath();
        renderer._fillStroke(ctx, this);
      } else {
        renderer._setPath(this, this._empty() ? "M0 0" : shapePath(this.options.shape, p.x, p.y, r));
      }
    },
  });

  function shapeOf(spec, props) {
    if (!spec.shapes) return { shape: "circle", dashArray: null };
    const value = spec.shapes.values.find((v) => v.code === props[spec.shapes.field]);
    return value ? { shape: value.shape, dashArray: null } : { shape: "circle", dashArray: UNKNOWN_DASH };
  }

  const overlays = {};
  cfg.surveyLayers.forEach((s) => {
    overlays[s.name] = L.layerGroup();
    if (s.on) overlays[s.name].addTo(map);
  });
  const control = L.control.layers(null, null, { collapsed: false }).addTo(map);
  control.addOverlay(cells, cfg.labels.cells);
  cfg.surveyLayers.forEach((s) => control.addOverlay(overlays[s.name], s.label));

  // Legend: status colours and marker shapes of the survey layers shown.
  const SVG = "http://www.w3.org/2000/svg";
  function svgNode(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, String(v)));
    return node;
  }

  function icon(cls, shape) {
    const svg = svgNode("svg", { width: 18, height: 18, viewBox: "0 0 18 18", class: cls });
    svg.appendChild(shape);
    return svg;
  }

  // a point marker's shape, unfilled; dashed for an empty or unknown value
  function swatch(shape, dashed) {
    const d = shapePath(shape, 9, 9, 5.5);
    const style = { fill: "#ffffff", stroke: "#333", ...(dashed ? { "stroke-dasharray": UNKNOWN_DASH } : {}) };
    const node = d ? svgNode("path", { d, ...style }) : svgNode("circle", { cx: 9, cy: 9, r: 5.5, ...style });
    return icon("gw-swatch gw-shape-" + shape + (dashed ? " gw-shape-unknown" : ""), node);
  }

  // a status colour
  function chip(color) {
    return icon("gw-swatch", svgNode("rect", { x: 2, y: 4, width: 14, height: 10, rx: 2, fill: color }));
  }

  function legendRow(mark, text) {
    const row = el("div", null, "gw-legend-row");
    row.appendChild(mark);
    row.appendChild(el("span", text));
    return row;
  }

  const legend = L.control({ position: "bottomleft" });
  legend.onAdd = () => {
    const box = el("div", null, "gw-legend");
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    return box;
  };
  legend.addTo(map);

  function drawLegend() {
    const box = legend.getContainer();
    box.replaceChildren();
    cfg.surveyLayers.filter((s) => map.hasLayer(overlays[s.name])).forEach((spec) => {
      box.appendChild(el("div", spec.label, "gw-legend-title"));
      if (spec.statuses.length) {
        box.appendChild(el("div", spec.statusLabel, "gw-legend-head"));
        spec.statuses.forEach((st) => box.appendChild(legendRow(chip(st.color), st.label)));
      }
      if (spec.shapes) {
        box.appendChild(el("div", spec.shapes.label, "gw-legend-head"));
        spec.shapes.values.forEach((v) => box.appendChild(legendRow(swatch(v.shape, false), v.label)));
        box.appendChild(legendRow(swatch("circle", true), cfg.labels.shapeUnknown));
      }
    });
    box.hidden = !box.firstChild;
  }

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
      pointToLayer: (f, latlng) => new ShapeMarker(latlng, {
        radius: spec.radius, weight: 1, color: "#333", fillOpacity: 0.85,
        fillColor: spec.colors[f.properties.status] || spec.color,
        ...shapeOf(spec, f.properties),
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
        // features stay above the units they lie in (one canvas draws both, in order)
        Object.values(overlays).forEach((group) => group.eachLayer((l) => l.bringToFront && l.bringToFront()));
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
    if (cfg.level !== cfg.levels[0].name) return; // features are listed for a unit grid only
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
  map.on("overlayadd overlayremove", drawLegend);
  drawLegend();
  refresh();
  window.gridwatchMap = { refresh, cells, overlays, legend };
})();
