/* gridwatch map page: loads what the viewport shows from the JSON API (unit outlines with their
   figures, survey features one by one or clustered) instead of embedding layers in the page.
   The map, its markers and status legend come from the shared map module
   (gridwatch-mapcore.js) and its configuration; this adds the page's own parts:

   - the filters (layer, level, metric, area, status, as-of date, base map) change the map in
     place: the header form is read on each change (it still works as a plain GET without
     script), the URL carries the whole state (history.replaceState, the view as
     `at=lat,lng,zoom`; parameters it does not know, such as `focus`, are kept) and the
     headline figures come from /api/summary;
   - a month slider (as of the end of each month, with play), a legend of the unit colours, the
     layers control naming the metric, the clicked unit outlined, community and street names
     labelled where they fit, target and progress with the progress metric, and 导出地图.

   All text from survey data is put into the page with textContent. */
(function () {
  "use strict";
  const core = window.gridwatch.mapcore;
  const cfg = core.config;
  const page = cfg.page;
  const words = page.labels;
  const { el, table } = core;
  const map = core.open();
  const form = document.getElementById("gw-form");
  const palette = ["#d73027", "#fc8d59", "#fee08b", "#d9ef8b", "#91cf60", "#1a9850"];
  const NO_DATA = "#dddddd";
  const SELECTED = "#1238ff";
  const unitLevel = cfg.levels[0].name;
  const enc = encodeURIComponent;

  (function stylesheet() {
    const script = document.currentScript;
    if (!script) return;
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = script.src.replace(/gridwatch-map\.js(\?.*)?$/, "gridwatch-map.css");
    document.head.appendChild(link);
  })();

  const state = {
    layer: cfg.layer,
    level: cfg.level,
    metric: cfg.metric,
    within: cfg.within,
    status: cfg.status,
    asOf: cfg.asOf,
    tiles: page.tiles,
  };
  const scales = {
    maxCompleted: cfg.maxCompleted || 1,
    maxMeasure: cfg.maxMeasure || 1,
    measureColumn: cfg.measureColumn,
    firstDay: page.firstDay,
  };
  let selected = null; // the code of the outlined unit
  let selectedProps = null;

  const crs = () => (cfg.gcj02 ? "&crs=gcj02" : "");
  const spec = () => cfg.layers.find((s) => s.name === state.layer);
  const levelLabel = (name) => (cfg.levels.find((lv) => lv.name === name) || { label: name }).label;

  /* --- colours and figures ------------------------------------------------------------- */

  function classOf(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return -1;
    const v = Math.max(0, Math.min(1, value));
    return Math.min(palette.length - 1, Math.round(v * (palette.length - 1)));
  }
  const colorFor = (value) => (classOf(value) < 0 ? NO_DATA : palette[classOf(value)]);

  function metricValue(props) {
    const p = state.layer;
    switch (state.metric) {
      case "completed": return props[p + "_completed"] / Math.max(1, scales.maxCompleted);
      case "area": {
        const v = props[scales.measureColumn];
        return v === undefined || v === null ? null : v / (scales.maxMeasure || 1);
      }
      case "progress": return props[p + "_completed_progress"];
      case "tasks": return (taskFigures[props.code] || {}).on_time_rate;
      default: return props[p + "_rate"];
    }
  }

  function metricName() {
    if (state.metric === "area") return (page.measures[state.layer] || {}).label || "";
    return words.metrics[state.metric] || state.metric;
  }

  const percent = (v) => (v === null || v === undefined || Number.isNaN(v) ? "—" : (v * 100).toFixed(1) + "%");

  function cellFigures(props) {
    const p = state.layer;
    const rows = [
      [cfg.labels.code, props.code],
      [cfg.labels.name, props.name],
      [cfg.labels.total, props[p + "_total"]],
      [cfg.labels.completed, props[p + "_completed"]],
      [cfg.labels.rate, percent(props[p + "_rate"])],
    ];
    const measure = page.measures[p] || {};
    if (measure.column && props[measure.column] !== undefined) rows.push([measure.label, props[measure.column]]);
    if (state.metric === "progress") {
      rows.push([words.target, props[p + "_completed_target"]]);
      rows.push([words.progress, percent(props[p + "_completed_progress"])]);
    }
    if (state.metric === "tasks") {
      const t = taskFigures[props.code] || {};
      Object.entries(words.tasks).forEach(([k, name]) => {
        rows.push([name, k.endsWith("_rate") ? percent(t[k]) : (t[k] === undefined ? 0 : t[k])]);
      });
    }
    return rows;
  }

  function cellStyle(f) {
    const mine = selected !== null && f.properties.code === selected;
    return {
      color: mine ? SELECTED : "#555",
      weight: mine ? 4 : 0.6,
      opacity: 1,
      fillOpacity: 0.6,
      fillColor: colorFor(metricValue(f.properties)),
    };
  }

  const cells = L.geoJSON(null, {
    style: cellStyle,
    onEachFeature: (f, layer) => {
      layer.bindTooltip(() => table(cellFigures(f.properties)), { sticky: true });
      layer.on("click", () => select(f.properties));
    },
  }).addTo(map);

  function restyle() {
    cells.setStyle(cellStyle);
    cells.eachLayer((l) => {
      if (selected !== null && l.feature && l.feature.properties.code === selected) l.bringToFront();
    });
  }

  /* --- base maps and the layers control ---------------------------------------------------- */

  // Base maps are made by the map module: it puts cfg.base on the map when asked to open it.
  // The control's entries are empty groups standing for them; choosing one puts that base map
  // on the map (through the module) in place of the tiles shown.
  const tilesOn = () => {
    const found = [];
    map.eachLayer((l) => { if (l instanceof L.TileLayer) found.push(l); });
    return found;
  };
  let shownTiles = tilesOn();
  const bases = {};
  const baseNames = {};
  page.baseMaps.forEach((b) => {
    bases[b.key] = { layer: L.layerGroup(), base: b, gcj02: Boolean(b.gcj02) };
    baseNames[b.name] = bases[b.key].layer;
  });
  bases.none = { layer: L.layerGroup(), base: null, gcj02: false };
  baseNames[words.noBase] = bases.none.layer;
  if (!bases[state.tiles]) state.tiles = "none";
  bases[state.tiles].layer.addTo(map);

  function showBase(key) {
    shownTiles.forEach((l) => map.removeLayer(l));
    const before = new Set(tilesOn());
    cfg.base = bases[key].base;
    core.open(); // the page's map again, with cfg.base on it
    shownTiles = tilesOn().filter((l) => !before.has(l));
  }

  const overlays = {};
  cfg.layers.forEach((s) => {
    overlays[s.name] = L.layerGroup();
    if (s.name === state.layer) overlays[s.name].addTo(map);
  });
  const control = L.control.layers(baseNames, null, { collapsed: window.innerWidth < 700 }).addTo(map);
  function nameOverlays() {
    control.removeLayer(cells);
    cfg.layers.forEach((s) => control.removeLayer(overlays[s.name]));
    control.addOverlay(cells, levelLabel(state.level) + " · " + metricName());
    cfg.layers.forEach((s) => control.addOverlay(overlays[s.name], s.label));
  }
  nameOverlays();
  const legend = core.legend(map, overlays);

  map.on("baselayerchange", (e) => {
    const key = Object.keys(bases).find((k) => bases[k].layer === e.layer);
    if (!key) return;
    state.tiles = key;
    showBase(key);
    if (bases[key].gcj02 !== Boolean(cfg.gcj02)) {
      cfg.gcj02 = bases[key].gcj02; // the API is asked in the base map's datum
      refresh();
    }
    writeUrl();
  });

  /* --- the legend of the unit colours ------------------------------------------------------ */

  const scaleLegend = L.control({ position: "bottomleft" });
  scaleLegend.onAdd = () => {
    const box = el("div", null, "gw-scale-legend");
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    return box;
  };
  scaleLegend.addTo(map);

  function number(v) {
    return Number(v).toLocaleString(cfg.lang === "en" ? "en" : "zh-CN", { maximumFractionDigits: v < 10 ? 1 : 0 });
  }

  // the classes of colorFor, from the highest: [colour, text]
  function classes() {
    const n = palette.length - 1;
    const edges = [0];
    for (let i = 1; i <= n; i += 1) edges.push((2 * i - 1) / (2 * n));
    edges.push(1);
    let fmt;
    if (state.metric === "completed") fmt = (x) => number(x * scales.maxCompleted);
    else if (state.metric === "area") fmt = (x) => number(x * scales.maxMeasure);
    else fmt = (x) => Math.round(x * 100) + "%";
    const rows = palette.map((color, i) => {
      const top = i === n && state.metric === "progress" ? "≥ " + fmt(edges[i]) : fmt(edges[i]) + " – " + fmt(edges[i + 1]);
      return [color, top];
    });
    return rows.reverse();
  }

  function chip(color) {
    const box = el("span", null, "gw-chip");
    box.style.background = color;
    return box;
  }

  // on a phone the classes fold away under the legend's title, which opens them again
  let legendFolded = window.matchMedia("(max-width: 600px)").matches;
  function drawScaleLegend() {
    const box = scaleLegend.getContainer();
    const title = el("button", levelLabel(state.level) + " · " + metricName(), "gw-legend-title");
    title.type = "button";
    title.setAttribute("aria-expanded", String(!legendFolded));
    title.addEventListener("click", () => {
      legendFolded = !legendFolded;
      drawScaleLegend();
    });
    box.classList.toggle("gw-folded", legendFolded);
    box.replaceChildren(title);
    classes().concat([[NO_DATA, words.noData]]).forEach(([color, text]) => {
      const row = el("div", null, "gw-legend-row");
      row.appendChild(chip(color));
      row.appendChild(el("span", text));
      box.appendChild(row);
    });
  }

  /* --- labels of communities and streets --------------------------------------------------- */

  const labels = L.layerGroup().addTo(map);
  function drawLabels(data) {
    labels.clearLayers();
    if (!data || !data.features) return;
    data.features.forEach((f) => {
      const name = f.properties.name || f.properties.code;
      const b = L.geoJSON(f).getBounds();
      if (!b.isValid()) return;
      const sw = map.latLngToContainerPoint(b.getSouthWest());
      const ne = map.latLngToContainerPoint(b.getNorthEast());
      // only where the name fits inside its unit: no clutter at small scales
      if (ne.x - sw.x < String(name).length * 13 + 16 || sw.y - ne.y < 24) return;
      const icon = L.divIcon({ className: "gw-label", html: "", iconSize: null });
      const marker = L.marker(b.getCenter(), { icon, interactive: false, keyboard: false });
      marker.on("add", () => {
        const box = marker.getElement();
        if (box) box.replaceChildren(el("span", name));
      });
      labels.addLayer(marker);
    });
  }

  /* --- loading --------------------------------------------------------------------------- */

  let pending = null;
  let loads = 0;
  // the hand-over tasks' figures per unit of the level shown (the metric "tasks"): unit code → figures
  let taskFigures = {};
  function loadTaskFigures(signal) {
    const day = state.asOf || page.today;
    return fetch(cfg.api + "/tasks/stats?level=" + enc(state.level) + "&as_of=" + enc(day), { signal })
      .then((r) => (r.ok ? r.json() : { rows: [] }))
      .then((data) => {
        taskFigures = {};
        data.rows.forEach((row) => { taskFigures[row.code] = row; });
        restyle();
      });
  }

  function refresh() {
    if (pending) pending.abort();
    pending = new AbortController();
    const signal = pending.signal;
    const zoom = Math.round(map.getZoom());
    const asOf = state.asOf ? "&as_of=" + state.asOf : "";
    const within = state.within ? "&within=" + enc(state.within) : "";
    const common = "&zoom=" + zoom + "&bbox=" + core.bboxParam(map) + asOf + crs();
    const json = (r) => {
      if (!r.ok) throw new Error(String(r.status));
      return r.json();
    };
    const upper = cfg.levels.length > 1 ? cfg.levels[1].name : null;
    const jobs = [];
    if (state.metric === "tasks") jobs.push(loadTaskFigures(signal));
    jobs.push(fetch(cfg.api + "/cells?level=" + state.level + "&layer=" + enc(state.layer) + common + within, { signal })
      .then(json)
      .then((data) => {
        cells.clearLayers();
        const note = document.getElementById("gw-note");
        if (note) note.textContent = data.too_many ? cfg.labels.tooMany.replace("{n}", data.too_many) : noteText;
        cells.addData(data);
        restyle();
        if (state.level !== unitLevel) drawLabels(data);
        // features stay above the units they lie in (one canvas draws both, in order)
        Object.values(overlays).forEach((group) => group.eachLayer((l) => l.bringToFront && l.bringToFront()));
        loads += 1;
        window.gridwatchMap.lastCells = { asOf: state.asOf, level: data.level, count: data.features.length, loads };
      }));
    if (state.level === unitLevel && upper) {
      // the names of the communities over the unit grids
      jobs.push(fetch(cfg.api + "/cells?level=" + upper + "&layer=" + enc(state.layer) + common + within, { signal })
        .then(json)
        .then((data) => drawLabels(data)));
    }
    cfg.layers.forEach((s) => {
      if (!map.hasLayer(overlays[s.name])) return;
      const status = s.name === state.layer && state.status ? "&status=" + enc(state.status) : "";
      jobs.push(fetch(cfg.api + "/features/" + s.name + "?" + common.slice(1) + status + within, { signal })
        .then(json)
        .then((data) => core.drawFeatures(map, overlays[s.name], s, data)));
    });
    return Promise.all(jobs).catch(() => {});
  }

  let noteText = "";
  let summaryRequest = null;
  function loadSummary(zoomToArea) {
    if (summaryRequest) summaryRequest.abort();
    summaryRequest = new AbortController();
    const q = new URLSearchParams({ layer: state.layer, level: state.level });
    if (state.asOf) q.set("as_of", state.asOf);
    if (state.within) q.set("within", state.within);
    if (state.status) q.set("status", state.status);
    return fetch(cfg.api + "/summary?" + q.toString(), { signal: summaryRequest.signal })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        const note = document.getElementById("gw-note");
        if (!ok) {
          noteText = body.message || "";
          if (note) note.textContent = noteText;
          return;
        }
        scales.maxCompleted = body.max_completed;
        scales.maxMeasure = body.max_measure;
        scales.measureColumn = body.measure_column;
        scales.firstDay = body.first_day;
        const totals = document.getElementById("gw-totals");
        if (totals) {
          totals.textContent = words.totals
            .replace("{layer}", spec().label)
            .replace("{total}", body.total)
            .replace("{completed}", body.completed)
            .replace("{unassigned}", body.unassigned);
        }
        noteText = body.total === 0 ? words.nothing : "";
        if (note && !note.textContent.startsWith(cfg.labels.tooMany.split("{")[0])) note.textContent = noteText;
        restyle();
        drawScaleLegend();
        buildMonths();
        // the first view's framing only while nobody (nor another script) has moved the map
        if (zoomToArea === "initial" ? !movedSinceLoad : zoomToArea) {
          const [w, s, e, n] = body.bounds;
          frame(L.latLngBounds([[s, w], [n, e]]));
        }
        window.gridwatchMap.summary = body;
      })
      .catch(() => {});
  }

  /* --- the state, the form and the URL ----------------------------------------------------- */

  function writeUrl() {
    const q = new URLSearchParams(window.location.search);
    const set = (k, v) => (v ? q.set(k, v) : q.delete(k));
    set("layer", state.layer);
    set("level", state.level);
    set("metric", state.metric);
    set("within", state.within);
    set("status", state.status);
    set("as_of", state.asOf);
    set("tiles", state.tiles);
    const c = map.getCenter();
    q.set("at", c.lat.toFixed(5) + "," + c.lng.toFixed(5) + "," + map.getZoom());
    window.history.replaceState(window.history.state, "", window.location.pathname + "?" + q.toString());
    updateLinks(q);
  }

  // the header's links follow the state: the other language, the statistics and their Excel
  function updateLinks(q) {
    document.querySelectorAll("a[href]").forEach((a) => {
      if (a.closest(".leaflet-container")) return;
      const url = new URL(a.getAttribute("href"), window.location.href);
      if (url.origin !== window.location.origin) return;
      const path = url.pathname;
      if (url.searchParams.has("lang") && path === window.location.pathname) {
        const lang = url.searchParams.get("lang");
        const next = new URLSearchParams(q);
        next.set("lang", lang);
        a.setAttribute("href", path + "?" + next.toString());
        return;
      }
      const stats = path.endsWith("/api/stats") || path.endsWith("/stats");
      if (!stats) return;
      const set = (k, v) => (v ? url.searchParams.set(k, v) : url.searchParams.delete(k));
      set("layer", state.layer);
      set("as_of", state.asOf);
      if (path.endsWith("/api/stats")) set("within", state.within);
      else set("level", state.level);
      a.setAttribute("href", url.pathname + "?" + url.searchParams.toString());
    });
  }

  const field = (name) => (form ? form.elements.namedItem(name) : null);

  function fillStatuses() {
    const select = field("status");
    if (!select) return;
    const first = select.options[0];
    select.replaceChildren(first);
    const offered = page.statuses[state.layer] || [];
    spec().statuses.filter((st) => offered.includes(st.code)).forEach((st) => {
      const option = el("option", st.label);
      option.value = st.code;
      select.appendChild(option);
    });
    if (!offered.includes(state.status)) state.status = "";
    select.value = state.status;
  }

  function fillMetrics() {
    const select = field("metric");
    if (!select) return;
    const area = select.querySelector("option[value=area]");
    const measure = page.measures[state.layer] || {};
    if (area) {
      area.hidden = !measure.column;
      area.disabled = !measure.column;
      if (measure.column) area.textContent = measure.label;
    } else if (measure.column) {
      const option = el("option", measure.label);
      option.value = "area";
      select.insertBefore(option, select.querySelector("option[value=progress]"));
    }
    if (state.metric === "area" && !measure.column) state.metric = "rate";
    select.value = state.metric;
  }

  function apply(zoomToArea) {
    writeUrl();
    return Promise.all([loadSummary(zoomToArea), refresh()]);
  }

  if (form) {
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      apply(false);
    });
    form.addEventListener("change", (e) => {
      const name = e.target.name;
      const value = e.target.value;
      if (name === "layer") {
        if (overlays[state.layer]) map.removeLayer(overlays[state.layer]);
        state.layer = value;
        map.addLayer(overlays[state.layer]);
        fillStatuses();
        fillMetrics();
        nameOverlays();
        map.fire("overlayadd", { layer: overlays[state.layer], name: spec().label }); // the status legend
      } else if (name === "level") {
        state.level = value;
        labels.clearLayers();
        nameOverlays();
      } else if (name === "metric") {
        state.metric = value;
        nameOverlays();
        restyle();
        if (value === "tasks") loadTaskFigures().catch(() => {});
        drawScaleLegend();
        writeUrl();
        return;
      } else if (name === "within") {
        state.within = value;
        apply(true);
        return;
      } else if (name === "status") {
        state.status = value;
      } else if (name === "as_of") {
        state.asOf = value;
        syncSlider();
      } else {
        return;
      }
      apply(false);
    });
  }

  /* --- the month slider ------------------------------------------------------------------ */

  let months = [];
  const slider = L.control({ position: "bottomright" });
  let range, monthText, playButton;
  slider.onAdd = () => {
    const box = el("div", null, "gw-slider leaflet-bar");
    L.DomEvent.disableClickPropagation(box);
    L.DomEvent.disableScrollPropagation(box);
    playButton = el("button", "▶", "gw-play");
    playButton.type = "button";
    playButton.title = words.play;
    playButton.setAttribute("aria-label", words.play);
    range = el("input", null, "gw-month");
    range.type = "range";
    range.min = "0";
    range.step = "1";
    range.setAttribute("aria-label", words.month);
    monthText = el("span", "", "gw-month-text");
    box.append(playButton, range, monthText);
    range.addEventListener("input", () => chooseMonth(Number(range.value)));
    playButton.addEventListener("click", () => (playing ? stop() : play()));
    return box;
  };

  const monthOf = (day) => day.slice(0, 7);
  function monthEnd(month) {
    const [y, m] = month.split("-").map(Number);
    const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
    const day = month + "-" + String(last).padStart(2, "0");
    return day > page.today ? page.today : day;
  }

  function buildMonths() {
    const first = scales.firstDay;
    if (!first) {
      if (slider.getContainer()) slider.remove();
      months = [];
      return;
    }
    let end = monthOf(page.today);
    if (state.asOf && monthOf(state.asOf) > end) end = monthOf(state.asOf);
    const list = [];
    let [y, m] = monthOf(first).split("-").map(Number);
    for (let guard = 0; guard < 600; guard += 1) {
      const month = y + "-" + String(m).padStart(2, "0");
      if (month > end) break;
      list.push(month);
      m += 1;
      if (m > 12) { m = 1; y += 1; }
    }
    months = list;
    if (!slider.getContainer() || !slider.getContainer().parentNode) slider.addTo(map);
    range.max = String(Math.max(0, months.length - 1));
    syncSlider();
  }

  function syncSlider() {
    if (!range || !months.length) return;
    const month = state.asOf ? monthOf(state.asOf) : months[months.length - 1];
    let i = months.indexOf(month);
    if (i < 0) i = month < months[0] ? 0 : months.length - 1;
    range.value = String(i);
    monthText.textContent = months[i];
  }

  function chooseMonth(i) {
    state.asOf = monthEnd(months[i]);
    monthText.textContent = months[i];
    const input = field("as_of");
    if (input) input.value = state.asOf;
    return apply(false);
  }

  let playing = false;
  let timer = null;
  function play() {
    if (!months.length) return;
    playing = true;
    playButton.textContent = "⏸";
    playButton.title = words.pause;
    playButton.setAttribute("aria-label", words.pause);
    let i = Number(range.value);
    if (i >= months.length - 1) i = -1;
    const step = () => {
      if (!playing) return;
      if (i >= months.length - 1) { stop(); return; }
      i += 1;
      range.value = String(i);
      // the next month one second after this one's data arrived
      chooseMonth(i).then(() => { if (playing) timer = window.setTimeout(step, 1000); });
    };
    step();
  }
  function stop() {
    playing = false;
    if (timer) window.clearTimeout(timer);
    timer = null;
    playButton.textContent = "▶";
    playButton.title = words.play;
    playButton.setAttribute("aria-label", words.play);
  }

  /* --- 导出地图 ---------------------------------------------------------------------------- */

  const exporter = L.control({ position: "topleft" });
  let exportLinks = [];
  exporter.onAdd = () => {
    const box = el("div", null, "gw-export leaflet-bar");
    L.DomEvent.disableClickPropagation(box);
    const button = el("button", words.export, "gw-export-button");
    button.type = "button";
    button.setAttribute("aria-expanded", "false");
    const menu = el("div", null, "gw-export-menu");
    menu.hidden = true;
    [["png", "a4"], ["png", "a3"], ["pdf", "a4"], ["pdf", "a3"]].forEach(([format, paper]) => {
      const a = el("a", format.toUpperCase() + " · " + paper.toUpperCase());
      a.dataset.format = format;
      a.dataset.paper = paper;
      a.target = "_blank";
      a.rel = "noopener";
      a.href = "#";
      menu.appendChild(a);
      exportLinks.push(a);
    });
    button.addEventListener("click", () => {
      exportLinks.forEach(exportHref);
      menu.hidden = !menu.hidden;
      button.setAttribute("aria-expanded", String(!menu.hidden));
    });
    menu.addEventListener("click", (e) => { if (e.target.tagName === "A") exportHref(e.target); });
    box.append(button, menu);
    return box;
  };
  exporter.addTo(map);

  function exportHref(a) {
    // the printed map draws the layer's own metrics (the tasks' figures are on the tasks page)
    const metric = state.metric === "tasks" ? "rate" : state.metric;
    const q = new URLSearchParams({ format: a.dataset.format, paper: a.dataset.paper, layer: state.layer, level: state.level, metric });
    if (state.asOf) q.set("as_of", state.asOf);
    if (state.within) q.set("within", state.within);
    if (state.status) q.set("status", state.status);
    q.set("bbox", core.bboxParam(map));
    a.href = page.mapImage + "?" + q.toString();
  }

  /* --- the side panel ---------------------------------------------------------------------- */

  function select(props) {
    selected = props.code;
    selectedProps = props;
    restyle();
    showUnit(props);
  }

  function deselect() {
    selected = null;
    selectedProps = null;
    restyle();
  }

  function closePanel() {
    deselect();
    document.getElementById("gw-panel").replaceChildren(el("p", words.clickUnit));
  }

  // the drawer of a narrow screen closed: no unit is selected any more (its figures stay in it)
  const drawerClose = document.getElementById("gw-drawer-close");
  if (drawerClose) drawerClose.addEventListener("click", deselect);

  function showUnit(props) {
    const panel = document.getElementById("gw-panel");
    const close = el("button", "×", "gw-panel-close");
    close.type = "button";
    close.title = words.close;
    close.setAttribute("aria-label", words.close);
    close.addEventListener("click", closePanel);
    panel.replaceChildren(close, el("h3", props.name || props.code), table(cellFigures(props)));
    if (state.level !== unitLevel) return; // features are listed for a unit grid only
    const s = spec();
    fetch(cfg.api + "/features/" + state.layer + "?zoom=18&detail=1&bbox=-180,-90,180,90&unit=" + enc(props.code) + crs())
      .then((r) => r.json())
      .then((data) => {
        if (selected !== props.code) return;
        const list = el("ol", null, "gw-list");
        data.features.forEach((f) => {
          const item = el("li");
          item.appendChild(core.featurePopup(s, f.properties));
          core.editControl(map, s, f.properties.id !== undefined ? f.properties.id : f.properties.fid, item);
          list.appendChild(item);
        });
        panel.appendChild(el("p", cfg.labels.features.replace("{n}", data.total)));
        panel.appendChild(list);
      })
      .catch(() => {});
  }

  /* --- start ----------------------------------------------------------------------------- */

  const at = (new URLSearchParams(window.location.search).get("at") || "").split(",").map(Number);
  const hasView = at.length === 3 && at.every((v) => Number.isFinite(v));
  if (hasView) map.setView([at[0], at[1]], at[2], { animate: false });

  // Until a person moves the map, the area (or the district) stays framed when the map's box
  // changes size (the page's layout settling, a window turned or resized).
  // (A view set by another script -- the search box going to ?focus= -- ends the framing too.)
  let framed = null;
  let framing = false;
  let movedSinceLoad = false;
  function frame(bounds) {
    framed = bounds;
    framing = true;
    map.fitBounds(bounds, { animate: false });
    framing = false;
  }
  const container = map.getContainer();
  const moved = () => { framed = null; movedSinceLoad = true; };
  ["pointerdown", "wheel", "keydown", "touchstart"].forEach((type) => container.addEventListener(type, moved, { passive: true }));
  map.on("movestart", () => { if (!framing) moved(); });
  map.on("resize", () => { if (framed) frame(framed); });
  if (!hasView && page.bounds) {
    const [w, s, e, n] = page.bounds;
    frame(L.latLngBounds([[s, w], [n, e]]));
  }

  map.on("moveend", () => { refresh(); writeUrl(); });
  // a feature changed from its popup or the unit panel: the map, its figures and the panel again
  map.on("gwfeatureedited", () => {
    refresh();
    loadSummary(false);
    if (selectedProps) showUnit(selectedProps);
  });
  map.on("overlayadd", refresh);
  drawScaleLegend();
  buildMonths();
  window.gridwatchMap = { map, refresh, cells, overlays, legend, scaleLegend, labels, state, control, bases, select, closePanel, play, stop };
  window.gridwatchMap.selectedProps = () => selectedProps;
  writeUrl();
  // the area chosen, else the district, framed in the map's box as laid out (unless a link or
  // the search box's ?focus= sets the view)
  const focus = new URLSearchParams(window.location.search).has("focus");
  if (focus) framed = null;
  loadSummary(!hasView && !focus && "initial");
  refresh();
})();
