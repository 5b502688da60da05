/* Statistics page: charts (Chart.js, served by the app) and sortable tables. */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("gw-chart-data").textContent);
  const bar = (id, series, color) => new Chart(document.getElementById(id), {
    type: "bar",
    data: { labels: series.labels, datasets: [{ label: data.labels.rate, data: series.rates, backgroundColor: color }] },
    options: { animation: false, scales: { y: { min: 0, max: 100 } }, plugins: { legend: { display: false } } },
  });
  // one completion chart per level the page lists (the canvases are named by level)
  const colors = ["#4a78b5", "#6aa84f"];
  data.levels.forEach((lv, i) => bar("gw-chart-" + lv.name, lv, colors[i % colors.length]));
  new Chart(document.getElementById("gw-chart-monthly"), {
    type: "line",
    data: {
      labels: data.monthly.months,
      datasets: [
        { label: data.labels.total, data: data.monthly.total, borderColor: "#999" },
        { label: data.labels.completed, data: data.monthly.completed, borderColor: "#1a9850" },
      ].concat(data.monthly.undated.some((v) => v > 0) ? [
        // completions without a date, apart: counted from their import day, not progress of that month
        { label: data.labels.undated, data: data.monthly.undated, borderColor: "#e6550d", borderDash: [6, 4], pointStyle: "triangle" },
      ] : []),
    },
    options: { animation: false },
  });
  // the figures' table and the patrol coverage's: sorted by a click on a header
  document.querySelectorAll("table.sortable").forEach((table) => table.querySelectorAll("thead th").forEach((th, col) => {
    let asc = true;
    th.addEventListener("click", () => {
      const numeric = th.dataset.type === "num";
      const rows = Array.from(table.tBodies[0].rows);
      const key = (r) => {
        const cell = r.cells[col];
        const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.replace(/[,%]/g, "");
        return numeric ? parseFloat(raw) || 0 : cell.textContent;
      };
      rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0) * (asc ? 1 : -1));
      asc = !asc;
      rows.forEach((r) => table.tBodies[0].appendChild(r));
    });
  }));
})();
