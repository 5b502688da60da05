/* gridwatch page layout, on every page: the menu button of the header on a narrow screen, and on
   the map page the filter panel, the unit drawer (opened when a unit is shown in #gw-panel), the
   map kept at the size of its box, and the page made ready for printing. */
(function () {
  "use strict";
  const narrow = window.matchMedia("(max-width: 900px)");

  // a button that opens and closes a part of the page by a class on `holder`
  function toggle(button, holder, cls) {
    if (!button || !holder) return () => {};
    const set = (open) => {
      holder.classList.toggle(cls, open);
      button.setAttribute("aria-expanded", String(open));
    };
    button.addEventListener("click", () => set(!holder.classList.contains(cls)));
    return set;
  }

  const header = document.querySelector(".gw-header");
  const setMenu = toggle(document.getElementById("gw-menu-toggle"), header, "gw-open");
  document.addEventListener("click", (e) => {
    if (header && header.classList.contains("gw-open") && !header.contains(e.target)) setMenu(false);
  });

  const toolbar = document.getElementById("gw-toolbar");
  toggle(document.getElementById("gw-filter-toggle"), toolbar, "gw-filters-open");

  const side = document.getElementById("gw-side");
  const drawerButton = document.getElementById("gw-drawer-toggle");
  const setDrawer = toggle(drawerButton, side, "gw-open");
  const close = document.getElementById("gw-drawer-close");
  if (close) {
    close.addEventListener("click", () => {
      setDrawer(false);
      if (drawerButton) drawerButton.focus();
    });
  }
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    setMenu(false);
    setDrawer(false);
  });

  // a unit shown in the panel (its content replaced, or the event "gridwatch:unit") opens the drawer
  const panel = document.getElementById("gw-panel");
  const showDrawer = () => {
    if (narrow.matches) setDrawer(true);
  };
  if (panel) {
    new MutationObserver((records) => {
      if (records.some((r) => r.removedNodes.length > 0)) showDrawer();
    }).observe(panel, { childList: true });
    document.addEventListener("gridwatch:unit", showDrawer);
  }

  const leafletMap = () => window.gridwatch && window.gridwatch.maps && window.gridwatch.maps.main;

  // the map follows the size of its box (filters opened, a window resized, print)
  const wrap = document.getElementById("mapwrap");
  if (wrap && window.ResizeObserver) {
    new ResizeObserver(() => {
      const map = leafletMap();
      if (map) map.invalidateSize({ pan: false });
    }).observe(wrap);
  }

  // the printed title of the map: layer, metric, area and date as chosen in the filters
  const title = document.getElementById("gw-print-title");
  const form = document.getElementById("gw-form");
  function printTitle() {
    if (!title || !form) return;
    const chosen = (name) => {
      const field = form.elements[name];
      if (!field) return "";
      // a select's chosen option as shown (the area's first option names the whole district)
      if (field.tagName === "SELECT") return field.selectedIndex >= 0 ? field.options[field.selectedIndex].text : "";
      return field.value;
    };
    const parts = [chosen("layer"), chosen("metric"), chosen("within")].filter(Boolean);
    // no date chosen: the figures are as of today (in the configured time zone)
    const asOf = chosen("as_of") || title.dataset.today || "";
    if (asOf) parts.push((title.dataset.asOf || "") + " " + asOf);
    if (parts.length) title.textContent = parts.join(" · ");
  }
  if (form) form.addEventListener("change", printTitle);
  printTitle();

  window.addEventListener("beforeprint", () => {
    printTitle();
    const map = leafletMap();
    if (map) map.invalidateSize({ pan: false });
    if (window.Chart && window.Chart.instances) {
      Object.values(window.Chart.instances).forEach((chart) => chart.resize());
    }
  });
  window.addEventListener("afterprint", () => {
    const map = leafletMap();
    if (map) map.invalidateSize({ pan: false });
    if (window.Chart && window.Chart.instances) {
      Object.values(window.Chart.instances).forEach((chart) => chart.resize());
    }
  });
})();
