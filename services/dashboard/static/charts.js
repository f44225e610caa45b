// The province page's charts (uPlot, vendored under static/vendor/uplot): quota progress
// against the deadline, and the availability trend. Redrawn whenever fresh figures arrive.
"use strict";

(function () {
  const THAI_MONTHS = ["ม.ค.", "ก.พ.", "มี.ค.", "เม.ย.", "พ.ค.", "มิ.ย.", "ก.ค.", "ส.ค.", "ก.ย.", "ต.ค.", "พ.ย.", "ธ.ค."];
  const DAY = 86400;

  // Day and B.E. year, Bangkok time, whatever the browser's own zone.
  function beDate(seconds) {
    const d = new Date((seconds + 7 * 3600) * 1000);
    return `${d.getUTCDate()} ${THAI_MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear() + 543}`;
  }

  function size(el) {
    return { width: Math.max(280, el.clientWidth - 8), height: 260 };
  }

  const axisFont = '13px "Sarabun", sans-serif';

  function xAxis() {
    return { font: axisFont, values: (u, splits) => splits.map(beDate), space: 90 };
  }

  // A vertical line where the deadline falls.
  function deadlinePlugin(deadline) {
    return {
      hooks: {
        draw: [
          (u) => {
            const x = u.valToPos(deadline, "x", true);
            if (!Number.isFinite(x)) return;
            const ctx = u.ctx;
            ctx.save();
            ctx.strokeStyle = "#a3001b";
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.fillStyle = "#a3001b";
            ctx.font = `${12 * devicePixelRatio}px Sarabun, sans-serif`;
            ctx.fillText("กำหนดส่ง (deadline)", x + 4 * devicePixelRatio, u.bbox.top + 14 * devicePixelRatio);
            ctx.restore();
          },
        ],
      },
    };
  }

  const charts = {};

  function draw(id, options, data) {
    const el = document.getElementById(id);
    if (!el || !window.uPlot) return;
    if (charts[id]) {
      charts[id].destroy();
      delete charts[id];
    }
    el.textContent = "";
    if (!data[0].length) {
      el.textContent = "ยังไม่มีข้อมูล (no figures yet)";
      return;
    }
    charts[id] = new uPlot({ ...size(el), ...options }, data, el);
  }

  function render(all) {
    const quota = all.quota;
    const lo = Math.min(quota.deadline, ...(quota.x.length ? quota.x : [quota.deadline])) - 2 * DAY;
    const hi = Math.max(quota.deadline, ...(quota.x.length ? quota.x : [quota.deadline])) + 2 * DAY;
    draw(
      "quota-chart",
      {
        scales: { x: { time: false, range: [lo, hi] }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.15] } },
        axes: [xAxis(), { font: axisFont, label: "กล้อง (cameras)", labelFont: axisFont }],
        series: [
          { label: "วันที่ (day)", value: (u, v) => (v == null ? "–" : beDate(v)) },
          { label: "เลือกแล้ว (selected)", stroke: "#1b6e35", width: 3, points: { show: true, size: 7 } },
          { label: "ต้องเลือก (required)", stroke: "#1a1a1a", width: 2, dash: [8, 6] },
        ],
        plugins: [deadlinePlugin(quota.deadline)],
      },
      [quota.x, quota.selected, quota.required]
    );
    const availability = all.availability;
    draw(
      "availability-chart",
      {
        scales: { x: { time: false }, y: { range: [0, 100] } },
        axes: [xAxis(), { font: axisFont, label: "ร้อยละ (%)", labelFont: axisFont }],
        series: [
          { label: "วันที่ (day)", value: (u, v) => (v == null ? "–" : beDate(v)) },
          { label: "ตามการตรวจสอบ (of probes) %", stroke: "#1f5aa0", width: 3, points: { show: true, size: 6 } },
          { label: "ตามจำนวนกล้อง (of cameras) %", stroke: "#8a4b00", width: 2, dash: [8, 6] },
        ],
      },
      [availability.x, availability.availability, availability.camera_availability]
    );
  }

  let latest = null;
  const script = document.getElementById("chart-data");
  if (script) latest = JSON.parse(script.textContent);

  function start() {
    if (latest) render(latest);
  }
  document.addEventListener("figures", (event) => {
    if (event.detail.charts && JSON.stringify(event.detail.charts) !== JSON.stringify(latest)) {
      latest = event.detail.charts;
      render(latest);
    }
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(start, 200);
  });
  if (document.fonts && document.fonts.ready) document.fonts.ready.then(start);
  else start();
})();
