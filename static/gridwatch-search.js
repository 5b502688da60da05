/* gridwatch map search: one box that finds units (by code or name, at every level) and survey
   features (by survey id or address) through GET /api/search, lists the hits (arrow keys, Enter,
   click), and on a choice zooms the map to the hit and highlights it -- a unit's outline, a ring
   round a feature -- until the next choice.  A link /?focus=unit:CODE or
   /?focus=feature:LAYER:FID does the same when the page opens (the feature list links so).

   Load it after gridwatch-mapcore.js and the page's map script: it uses the page's Leaflet map
   (window.gridwatchMap.map, else the map the core registered) and the core's configuration.
   Its words are data-* attributes of the box.  Text from survey data goes in with textContent. */
(function () {
  "use strict";
  const ns = window.gridwatch || {};
  const core = ns.mapcore;
  const input = document.getElementById("gw-search");
  const list = document.getElementById("gw-search-hits");
  if (!core || !input || !list) return;
  const cfg = core.config;
  const words = input.dataset;
  const COLOR = "#00c8ff";

  function theMap() {
    return (window.gridwatchMap && window.gridwatchMap.map) || ns.maps[cfg.map.key];
  }

  const map = theMap();
  map.createPane("gw-search");
  map.getPane("gw-search").style.zIndex = 640;
  map.getPane("gw-search").style.pointerEvents = "none";
  const renderer = L.svg({ pane: "gw-search" });
  let marked = null;
  let hits = [];
  let active = -1;
  let pending = null;
  let timer = null;

  function clearMark() {
    if (marked) map.removeLayer(marked);
    marked = null;
  }

  /* Zoom to [west, south, east, north] and mark `geometry` (GeoJSON) as a unit or a feature. */
  function highlight(kind, geometry, bbox) {
    clearMark();
    const group = L.featureGroup();
    if (kind === "unit" && geometry) {
      L.geoJSON(geometry, {
        renderer, pane: "gw-search", interactive: false,
        style: { color: COLOR, weight: 4, opacity: 0.95, fill: false },
      }).addTo(group);
    } else if (geometry) {
      const shape = L.geoJSON(geometry, {
        renderer, pane: "gw-search", interactive: false,
        style: { color: COLOR, weight: 3, fill: false },
        pointToLayer: (f, latlng) => L.circleMarker(latlng, { renderer, pane: "gw-search", radius: 4, color: COLOR, fillOpacity: 1 }),
      }).addTo(group);
      const c = shape.getBounds().getCenter();
      L.circleMarker(c, { renderer, pane: "gw-search", interactive: false, radius: 16, color: COLOR, weight: 4, fill: false }).addTo(group);
    }
    marked = group.addTo(map);
    const bounds = bbox
      ? L.latLngBounds([bbox[1], bbox[0]], [bbox[3], bbox[2]])
      : group.getBounds();
    if (!bounds.isValid()) return;
    if (kind === "unit") map.fitBounds(bounds, { padding: [24, 24], maxZoom: 18 });
    else map.setView(bounds.getCenter(), Math.max(map.getZoom(), 17));
  }

  function choose(hit) {
    close();
    input.value = hit.label;
    const geometry = hit.kind === "unit" ? hit.outline : { type: "Point", coordinates: hit.point };
    highlight(hit.kind, geometry, hit.bbox);
    api.chosen = hit;
  }

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    active = -1;
  }

  function mark(i) {
    active = i;
    Array.from(list.children).forEach((li, k) => li.setAttribute("aria-selected", k === i ? "true" : "false"));
    if (i >= 0 && list.children[i]) {
      list.children[i].scrollIntoView({ block: "nearest" });
      input.setAttribute("aria-activedescendant", list.children[i].id);
    }
  }

  function render(found) {
    hits = found;
    list.replaceChildren();
    if (!found.length) {
      list.appendChild(core.el("li", words.none, "gw-search-none"));
    }
    found.forEach((hit, i) => {
      const li = core.el("li", null, "gw-search-hit");
      li.id = "gw-search-hit-" + i;
      li.setAttribute("role", "option");
      li.appendChild(core.el("span", hit.label, "gw-search-label"));
      const where = [hit.group_label, hit.kind === "unit" && hit.code !== hit.label ? hit.code : null, hit.parent]
        .filter((v) => v);
      li.appendChild(core.el("span", where.join(" · "), "gw-search-where"));
      li.addEventListener("mousedown", (e) => { e.preventDefault(); choose(hit); });
      list.appendChild(li);
    });
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    mark(found.length ? 0 : -1);
  }

  function lookUp() {
    const q = input.value.trim();
    if (pending) pending.abort();
    if (!q) { close(); return; }
    pending = new AbortController();
    const url = cfg.api + "/search?limit=10&q=" + encodeURIComponent(q.slice(0, 100)) + "&lang=" + encodeURIComponent(cfg.lang) + core.crsParam;
    fetch(url, { signal: pending.signal, headers: { Accept: "application/json" } })
      .then((r) => r.json().then((body) => ({ ok: r.ok, body })))
      .then(({ ok, body }) => {
        if (ok) render(body.hits || []);
        else { list.replaceChildren(core.el("li", body.message || words.none, "gw-search-none")); list.hidden = false; }
      })
      .catch(() => {});
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(lookUp, 200);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      if (list.hidden) { lookUp(); return; }
      if (!hits.length) return;
      const step = e.key === "ArrowDown" ? 1 : -1;
      mark((active + step + hits.length) % hits.length);
    } else if (e.key === "Enter") {
      e.preventDefault();
      clearTimeout(timer);
      if (!list.hidden && hits[active]) choose(hits[active]);
      else lookUp();
    } else if (e.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));

  /* ?focus=unit:CODE or ?focus=feature:LAYER:FID: zoom to it and mark it when the page opens. */
  function focusFromLink() {
    const focus = new URLSearchParams(window.location.search).get("focus");
    if (!focus) return;
    const parts = focus.split(":");
    if (parts[0] === "unit" && parts.length >= 2) {
      const code = parts.slice(1).join(":");
      fetch(cfg.api + "/search?limit=5&q=" + encodeURIComponent(code) + core.crsParam)
        .then((r) => r.json())
        .then((body) => {
          const hit = (body.hits || []).find((h) => h.kind === "unit" && h.code === code);
          if (hit) choose(hit);
        })
        .catch(() => {});
    } else if (parts[0] === "feature" && parts.length === 3 && /^[0-9]+$/.test(parts[2])) {
      fetch(cfg.api + "/features/" + encodeURIComponent(parts[1]) + "/" + parts[2] + "?" + core.crsParam.slice(1))
        .then((r) => (r.ok ? r.json() : null))
        .then((f) => {
          if (!f || !f.geometry) return;
          highlight("feature", f.geometry, null);
          api.chosen = { kind: "feature", layer: parts[1], fid: Number(parts[2]) };
        })
        .catch(() => {});
    }
  }

  const api = { choose, highlight, clear: clearMark, chosen: null, marked: () => marked };
  window.gridwatchSearch = api;
  focusFromLink();
})();
