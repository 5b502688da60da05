/* gridwatch map core: the one map set-up of the pages with a map -- the map page
   (gridwatch-map.js) and the upload page's preview (gridwatch-upload.js).  Load it after Leaflet
   and before the page's own script; it reads one JSON block the view renders (web/maps.py),
   <script type="application/json" id="gw-map-config">:

     map       {key, container}: the page's map is gridwatch.maps[key] when the page's scaffold
               put one there (the map page: Folium's map, registered by web/maps.py), else one
               made here in the element with the id `container`
     api       the JSON API's root           lang       the page's language
     base      the base map {url, labels, subdomains, attr, name, gcj02}, or null
     baseError why there is no base map when one was asked for, or null
     gcj02     the base map is in GCJ-02: coordinates are asked of the API in GCJ-02 too
     levels    [{name, label}]: the unit hierarchy, the unit grid first
     layers    the survey layers: name, label, fields, statuses with colours (asOf: drawn only as of a day), marker shapes, style
     labels    the map's words, in the page's language

   and puts what the pages share on window.gridwatch.mapcore.  Only Leaflet's public API is
   used.  All text from survey data goes into the page with textContent, never as HTML. */
(function () {
  "use strict";
  const ns = (window.gridwatch = window.gridwatch || {});
  ns.maps = ns.maps || {};
  const cfg = JSON.parse(document.getElementById("gw-map-config").textContent);
  const crsParam = cfg.gcj02 ? "&crs=gcj02" : "";

  /* The page's map, with its base map: the one registered under cfg.map.key, else a new one. */
  function open() {
    let map = ns.maps[cfg.map.key];
    if (!map) {
      if (!cfg.map.container) throw new Error("gridwatch: no map registered as " + cfg.map.key);
      map = L.map(cfg.map.container, { preferCanvas: true, attributionControl: Boolean(cfg.base) });
      ns.maps[cfg.map.key] = map;
    }
    if (!map.gwPopupClass) {
      // an open popup is what the user is reading: on a phone the legends and the layer switch step
      // aside for it (CSS), which would otherwise cover it and its close button
      map.gwPopupClass = true;
      map.on("popupopen", () => map.getContainer().classList.add("gw-popup-open"));
      map.on("popupclose", () => map.getContainer().classList.remove("gw-popup-open"));
    }
    if (!map.gwScale) {
      // metres only: the bureaus' maps and reports never speak in feet or miles
      map.gwScale = true;
      L.control.scale({ imperial: false }).addTo(map);
    }
    addBaseMap(map);
    return map;
  }

  function addBaseMap(map) {
    const base = cfg.base;
    if (!base) return;
    const subdomains = base.subdomains || "abc";
    L.tileLayer(base.url, { attribution: base.attr, maxZoom: 19, subdomains }).addTo(map);
    if (base.labels) L.tileLayer(base.labels, { attribution: base.attr, maxZoom: 18, subdomains }).addTo(map);
  }

  /* The map's view as the API's bbox parameter: west,south,east,north in degrees. */
  function bboxParam(map) {
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

  /* Unit outlines in view, unit grids first, a coarser level (cfg.levels) when too many are in
     view: {layer, load}; load() asks for the current view.  `query` is added to each request. */
  function unitOutlines(map, query) {
    const layer = L.geoJSON(null, { interactive: false, style: { color: "#555", weight: 1, fill: false } }).addTo(map);
    const levels = cfg.levels.map((lv) => lv.name);
    let request = null;
    function load() {
      if (request) request.abort();
      request = new AbortController();
      const signal = request.signal;
      const common = "&zoom=" + Math.round(map.getZoom()) + "&bbox=" + bboxParam(map) + crsParam + (query || "");
      const attempt = (i) => fetch(cfg.api + "/cells?level=" + levels[i] + common, { signal })
        .then((r) => r.json())
        .then((data) => {
          if (data.too_many && i + 1 < levels.length) return attempt(i + 1);
          layer.clearLayers();
          if (data.features) layer.addData(data);
          return null;
        });
      attempt(0).catch(() => {});
    }
    return { layer, load };
  }

  /* Point markers: fill colour by status, shape by the value of the layer's shape field
     (declared in the layer).  Drawn by the map's renderer (canvas), so thousands stay cheap.
     Vertices are relative to the marker's centre, in units of its radius; a circle has none. */
  const SHAPES = {
    square: [[-0.9, -0.9], [0.9, -0.9], [0.9, 0.9], [-0.9, 0.9]],
    triangle: [[0, -1.45], [1.256, 0.725], [-1.256, 0.725]],
    diamond: [[0, -1.25], [1.25, 0], [0, 1.25], [-1.25, 0]],
  };
  const UNKNOWN_DASH = "2 2"; // outline of a feature whose shape value is empty or unknown
  const HALO = 2; // pixels of white around every point marker and cluster
  const HALO_COLOR = "#ffffff";

  function shapePath(shape, x, y, r) {
    const corners = SHAPES[shape];
    if (!corners) return null;
    return "M" + corners.map(([dx, dy]) => (x + dx * r).toFixed(1) + " " + (y + dy * r).toFixed(1)).join("L") + "Z";
  }

  // Distance of each shape's edges from its centre, in units of its radius.
  const INRADIUS = { square: 0.9, triangle: 0.725, diamond: 1.25 / Math.SQRT2 };

  /* A marker of options.shape and options.radius (pixels) at latlng: a circle marker, or a
     shape drawn as two polygons on the map's renderer -- its inside, and its outline as a ring
     options.weight pixels wide -- whose corners are placed again at each zoom.  (Leaflet puts a
     polygon's corners on whole pixels; a ring between them stays as sharp as a one-pixel
     stroke centred on half pixels.)  The shaped marker takes its style (color, opacity,
     fillColor, fillOpacity, weight) through setStyle like a path, and answers getLatLng() and
     setRadius() like a circle marker. */
  function shapeMarker(map, latlng, options) {
    if (!SHAPES[options.shape]) return haloCircle(latlng, options);
    const centre = L.latLng(latlng);
    const flat = { stroke: false, smoothFactor: 0, noClip: true };
    const halo = L.polygon([], { ...flat, interactive: false, fillColor: HALO_COLOR, fillOpacity: 1 });
    const inside = L.polygon([], flat);
    const ring = L.polygon([], flat);
    const marker = L.featureGroup([halo, inside, ring]);
    L.setOptions(marker, { opacity: 1, weight: 1, ...options });

    // the shape's corners `grow` pixels out from its edges (in when negative)
    function corners(grow) {
      const o = marker.options, zoom = map.getZoom(), p = map.project(centre, zoom);
      const r = o.radius + grow / INRADIUS[o.shape];
      return SHAPES[o.shape].map(([dx, dy]) => map.unproject(p.add([dx * r, dy * r]), zoom));
    }
    function place() {
      const half = marker.options.weight / 2;
      halo.setLatLngs(corners(half + HALO));
      inside.setLatLngs(corners(-half));
      ring.setLatLngs([corners(half), corners(-half)]);
    }
    function paint() {
      const o = marker.options;
      inside.setStyle({ fillColor: o.fillColor, fillOpacity: o.fillOpacity });
      ring.setStyle({ fillColor: o.color, fillOpacity: o.opacity });
    }
    marker.on("add", () => { place(); map.on("zoomend", place); });
    marker.on("remove", () => map.off("zoomend", place));
    marker.getLatLng = () => centre;
    marker.setRadius = (radius) => {
      marker.options.radius = radius;
      if (map.hasLayer(marker)) place();
      return marker;
    };
    marker.setStyle = (style) => {
      L.setOptions(marker, style);
      paint();
      if (map.hasLayer(marker)) place();
      return marker;
    };
    paint();
    return marker;
  }

  /* A circle marker with a halo: a white disc HALO pixels wider under it, so that a point reads on
     a unit of its own colour.  It answers setStyle, setRadius and getLatLng like a circle marker;
     the halo keeps its colour and follows the radius and the outline's weight. */
  function haloCircle(latlng, options) {
    const dot = L.circleMarker(latlng, options);
    const haloRadius = () => dot.options.radius + (dot.options.weight || 0) / 2 + HALO;
    const halo = L.circleMarker(latlng, {
      radius: haloRadius(), stroke: false, fill: true, fillColor: HALO_COLOR, fillOpacity: 1, interactive: false,
    });
    const marker = L.featureGroup([halo, dot]);
    L.setOptions(marker, dot.options);
    marker.getLatLng = () => dot.getLatLng();
    marker.setRadius = (radius) => {
      dot.setRadius(radius);
      halo.setRadius(haloRadius());
      return marker;
    };
    marker.setStyle = (style) => {
      dot.setStyle(style);
      halo.setRadius(haloRadius());
      L.setOptions(marker, style);
      return marker;
    };
    return marker;
  }

  function shapeOf(spec, props) {
    if (!spec.shapes) return { shape: "circle", dashArray: null };
    const value = spec.shapes.values.find((v) => v.code === props[spec.shapes.field]);
    return value ? { shape: value.shape, dashArray: null } : { shape: "circle", dashArray: UNKNOWN_DASH };
  }

  function featurePopup(spec, props) {
    // a status's or category's code in the page's language; other values as they are
    const shown = (f, v) => (f.values && v !== null && v !== undefined && f.values[v] !== undefined ? f.values[v] : v);
    const rows = spec.fields.map((f) => [f.label, shown(f, props[f.name])]);
    rows.push([cfg.labels.unit, props.unit]);
    return table(rows);
  }

  /* The photos of a feature above its popup's table: each thumbnail opens the full image, with
     the time the photo says it was taken.  Nothing is shown when there are none or the account
     may not see them (an anonymous visitor of a public map). */
  function featurePhotos(spec, fid, box, resized) {
    fetch(cfg.api + "/features/" + spec.name + "/" + fid + "/photos", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((answer) => {
        if (!answer || !answer.photos.length) return;
        const strip = el("div", null, "gw-photos");
        strip.appendChild(el("div", cfg.labels.photos + " (" + answer.photos.length + ")", "gw-photos-title"));
        answer.photos.forEach((p) => {
          const fig = el("figure", null, "gw-photo");
          const link = el("a");
          link.href = p.url;
          link.target = "_blank";
          link.rel = "noopener";
          const img = el("img");
          img.src = p.thumb_url;
          img.alt = p.note || cfg.labels.photos;
          img.loading = "lazy";
          img.addEventListener("load", resized);
          link.appendChild(img);
          fig.appendChild(link);
          const when = p.taken_at ? p.taken_at.replace("T", " ") : cfg.labels.takenUnknown;
          fig.appendChild(el("figcaption", cfg.labels.takenAt + " " + when));
          if (p.note) fig.appendChild(el("figcaption", p.note, "gw-photo-note"));
          strip.appendChild(fig);
        });
        box.insertBefore(strip, box.firstChild); // first: seen without scrolling the popup
        resized();
      })
      .catch(() => {});
  }

  /* Under a feature's fields, for an account that may change features (the page loads
     gridwatch-edit.js): a button that reads the feature again -- its current version -- and opens
     the edit form in its place.  A change saved calls `saved(result)` (the result names the
     feature's new row: `result.fid`), then fires `gwfeatureedited` on the map. */
  function editControl(map, spec, id, box, resized, inPopup, saved) {
    const edit = ns.edit;
    if (!edit || !edit.config.canEdit || !edit.config.layers[spec.name]) return;
    const holder = el("div", null, "gw-edit-holder");
    const button = el("button", edit.config.labels.edit, "gw-edit-toggle");
    button.type = "button";
    holder.appendChild(button);
    box.appendChild(holder);
    const open = () => {
      // in a popup the form takes the table's place (it shows the values it changes), so the form
      // and what it says fit in the popup without scrolling
      const table = inPopup ? box.querySelector(".gw-props") : null;
      if (table) table.hidden = true;
      edit.open(holder, spec.name, id, {
        resized,
        compact: Boolean(inPopup),
        onSaved: (result) => {
          // the form done: the popup and the panel are drawn again with the feature as it is now
          // (a popup's table, of the values before, stays hidden until then)
          holder.replaceChildren(el("p", edit.config.labels.saved, "gw-edit-message gw-edit-ok"));
          if (saved) saved(result);
          map.fire("gwfeatureedited", { layer: spec.name, id, result });
        },
      });
    };
    // (the button goes from the page as the form comes: a click that reached the map then would
    // no longer be seen as the popup's, and close it)
    button.addEventListener("click", (e) => { e.stopPropagation(); open(); });
  }

  /* A status's colour and label in the page's language; `null` is a feature without a status. */
  function statusLook(spec, code) {
    if (code === null || code === undefined) return { color: spec.color, label: cfg.labels.statusNone };
    const st = spec.statuses.find((s) => s.code === code);
    return { color: spec.colors[code] || spec.color, label: st ? st.label : code };
  }

  /* A cluster's marker: a ring with one arc per status (in the status colours, each as long as its
     share of the count), the count in the centre, on a white disc; larger for larger counts. */
  function clusterRing(spec, props) {
    const n = props.count;
    const size = Math.round(Math.min(64, 28 + 10 * Math.log10(Math.max(1, n))));
    const c = size / 2, width = Math.max(5, Math.round(size * 0.2));
    const r = c - HALO - width / 2, round = 2 * Math.PI * r;
    const svg = svgNode("svg", { width: size, height: size, viewBox: "0 0 " + size + " " + size, class: "gw-ring-svg" });
    svg.appendChild(svgNode("circle", { cx: c, cy: c, r: c, fill: HALO_COLOR, "fill-opacity": 0.95 }));
    let start = 0;
    (props.statuses || []).forEach((part) => {
      const length = (part.count / n) * round;
      svg.appendChild(svgNode("circle", {
        cx: c, cy: c, r: r.toFixed(2), fill: "none", stroke: statusLook(spec, part.status).color,
        "stroke-width": width, "stroke-dasharray": length.toFixed(2) + " " + (round - length + 0.01).toFixed(2),
        "stroke-dashoffset": (-start).toFixed(2), transform: "rotate(-90 " + c + " " + c + ")",
        class: "gw-ring-arc", "data-status": part.status === null ? "" : part.status, "data-count": part.count,
      }));
      start += length;
    });
    const text = svgNode("text", {
      x: c, y: c, "text-anchor": "middle", "dominant-baseline": "central", fill: "#222",
      "font-size": n >= 1000 ? 10 : 12, "font-weight": "bold", "font-family": "sans-serif",
    });
    text.textContent = String(n);
    svg.appendChild(text);
    return { svg, size };
  }

  /* A cluster's tooltip: each status with its count, then the total. */
  function clusterTable(spec, props) {
    const rows = (props.statuses || []).map((part) => [statusLook(spec, part.status).label, part.count]);
    rows.push([cfg.labels.total, props.count]);
    return table(rows);
  }

  /* Draw the API's answer for a survey layer into `group`: clusters as rings of their status mix,
     or the features one by one, each with a popup of its fields read when it opens. */
  function drawFeatures(map, group, spec, data) {
    // a feature whose popup is open stays open across the redraw (a popup that pans the map into
    // view, grown by its photos, makes the map ask again and draw its features anew)
    const reopen = group.gwOpenFid;
    // an edit form open in that popup is kept, as typed, in the popup opened again
    const before = group.gwOpenLayer && group.gwOpenLayer.getPopup() && group.gwOpenLayer.getPopup().getContent();
    const kept = before instanceof HTMLElement && before.querySelector(".gw-edit") ? before : null;
    // (an edit by someone else gives the feature a new row, so a new fid: the form stays with the
    // feature drawn where it was)
    const keptAt = kept && group.gwOpenLayer.getLatLng ? group.gwOpenLayer.getLatLng() : null;
    group.gwOpenLayer = null;
    group.gwRedrawing = true;
    group.clearLayers();
    group.gwRedrawing = false;
    group.gwOpenFid = null; // until the feature's popup is open again
    // as of a day, a site completed later comes as the "not completed as of that day" state:
    // the legend lists that state while such a map is drawn
    const asOf = Boolean(data.as_of);
    if (map.gwAsOf !== asOf) {
      map.gwAsOf = asOf;
      map.fire("gwasofchange");
    }
    if (data.aggregated) {
      data.features.forEach((f) => {
        const [lon, lat] = f.geometry.coordinates;
        const { svg, size } = clusterRing(spec, f.properties);
        const icon = L.divIcon({ className: "gw-ring", html: svg, iconSize: [size, size] });
        const marker = L.marker([lat, lon], { icon, keyboard: false });
        marker.bindTooltip(() => clusterTable(spec, f.properties), { direction: "top", offset: [0, -size / 2] });
        group.addLayer(marker);
      });
      return;
    }
    const layer = L.geoJSON(data, {
      pointToLayer: (f, latlng) => shapeMarker(map, latlng, {
        radius: spec.radius, weight: 1, color: "#333", fillOpacity: 0.85,
        fillColor: spec.colors[f.properties.status] || spec.color,
        ...shapeOf(spec, f.properties),
      }),
      // polygons and lines in their status colour; point markers keep the style they were made with
      style: (f) => (f.geometry.type === "Point" ? {}
        : { color: spec.colors[f.properties.status] || spec.color, weight: 1, fillOpacity: 0.5 }),
      onEachFeature: (f, l) => {
        // no taller than the map (it scrolls): panned into view, the feature stays in view
        // panned clear of the bottom edge's controls too (the month slider, the attribution)
        l.bindPopup(cfg.labels.loading, {
          maxHeight: Math.max(160, map.getSize().y - 130),
          autoPanPaddingTopLeft: L.point(5, 5),
          autoPanPaddingBottomRight: L.point(5, 64),
        });
        const again = f.properties.fid === reopen || Boolean(keptAt && l.getLatLng && l.getLatLng().equals(keptAt));
        if (again && map.getBounds().contains(l.getLatLng ? l.getLatLng() : l.getBounds().getCenter())) {
          group.gwOpenFid = f.properties.fid;
          l.gwAgain = true;
          // opened again where it was, without panning: a pan would move the map, which asks for
          // the features and draws them again, over and over when the popup is as tall as the map
          l.getPopup().options.autoPan = false;
          setTimeout(() => { if (group.hasLayer(layer)) l.openPopup(); }, 0);
        }
        l.on("popupclose", () => {
          if (!group.gwRedrawing && group.gwOpenFid === f.properties.fid) group.gwOpenFid = null;
        });
        l.on("popupopen", () => {
          group.gwOpenFid = f.properties.fid;
          group.gwOpenLayer = l;
          if (kept && l.gwAgain && !l.gwKept) {
            l.gwKept = true;
            l.setPopupContent(kept);
            return;
          }
          fetch(cfg.api + "/features/" + spec.name + "/" + f.properties.fid + (cfg.gcj02 ? "?crs=gcj02" : ""))
            .then((r) => r.json())
            .then((full) => {
              const box = el("div", null, "gw-popup");
              box.appendChild(featurePopup(spec, full.properties));
              // (the form is kept across redraws: it resizes the popup open now, whichever that is)
              const resized = () => {
                const open = group.gwOpenLayer;
                if (open && open.isPopupOpen() && open.getPopup().getContent() === box) open.getPopup().update();
              };
              if (group.gwSavedFid === f.properties.fid) { // opened again after its edit was saved
                group.gwSavedFid = null;
                if (ns.edit) box.prepend(el("p", ns.edit.config.labels.saved, "gw-edit-message gw-edit-ok"));
              }
              const id = full.properties.id !== undefined ? full.properties.id : f.properties.fid;
              // an edit gives the feature a new row, so a new fid: the popup opens again on that
              // row as the map is drawn anew
              editControl(map, spec, id, box, resized, true, (result) => {
                if (result && result.fid !== undefined && group.gwOpenFid === f.properties.fid) {
                  group.gwOpenFid = result.fid;
                  group.gwSavedFid = result.fid;
                }
              });
              l.setPopupContent(box);
              featurePhotos(spec, f.properties.fid, box, () => l.isPopupOpen() && l.getPopup().update());
            });
        });
      },
    });
    group.addLayer(layer);
  }

  /* Legend: status colours and marker shapes of the survey layers shown. */
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

  /* A legend control for the survey layers whose overlay (overlays[name]) is on the map; it is
     drawn again when an overlay is switched on or off.  Returns the control. */
  function legend(map, overlays) {
    const control = L.control({ position: "bottomleft" });
    control.onAdd = () => {
      const box = el("div", null, "gw-legend");
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    };
    control.addTo(map);
    function draw() {
      const box = control.getContainer();
      box.replaceChildren();
      cfg.layers.filter((s) => overlays[s.name] && map.hasLayer(overlays[s.name])).forEach((spec) => {
        box.appendChild(el("div", spec.label, "gw-legend-title"));
        if (spec.statuses.length) {
          box.appendChild(el("div", spec.statusLabel, "gw-legend-head"));
          spec.statuses.filter((st) => !st.asOf || map.gwAsOf)
            .forEach((st) => box.appendChild(legendRow(chip(st.color), st.label)));
        }
        if (spec.shapes) {
          box.appendChild(el("div", spec.shapes.label, "gw-legend-head"));
          spec.shapes.values.forEach((v) => box.appendChild(legendRow(swatch(v.shape, false), v.label)));
          box.appendChild(legendRow(swatch("circle", true), cfg.labels.shapeUnknown));
        }
      });
      box.hidden = !box.firstChild;
    }
    map.on("overlayadd overlayremove gwasofchange", draw);
    draw();
    return control;
  }

  ns.mapcore = {
    config: cfg, crsParam, open, bboxParam, el, table, unitOutlines,
    shapeMarker, haloCircle, shapeOf, featurePopup, editControl, drawFeatures, clusterRing, legend,
  };
})();
