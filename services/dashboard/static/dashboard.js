// The dashboard's pages, live: figures fetched again every few seconds, alerts streamed.
// No framework and nothing from a CDN. The server renders every page whole; this script only
// swaps in newer figures (data-figure elements, server-rendered fragments by id), keeps the
// province table's sort and filter, and prepends alerts from the event stream.
"use strict";

(function () {
  const body = document.body;
  const api = body.dataset.api;
  const refreshMs = Math.max(1, Number(body.dataset.refresh || 5)) * 1000;
  const state = document.getElementById("refresh-state");

  // -- figures ----------------------------------------------------------------------------
  const lastFragments = {};

  function applyFigures(data) {
    for (const [key, value] of Object.entries(data.text || {})) {
      for (const el of document.querySelectorAll(`[data-figure="${CSS.escape(key)}"]`)) {
        if (el.textContent !== value) el.textContent = value;
      }
    }
    for (const [id, html] of Object.entries(data.fragments || {})) {
      const el = document.getElementById(id);
      if (!el || lastFragments[id] === html) continue;
      lastFragments[id] = html;
      replaceKeepingFocus(el, html);
    }
    document.dispatchEvent(new CustomEvent("figures", { detail: data }));
  }

  // Swapping a fragment must not throw keyboard focus back to the top of the page.
  function replaceKeepingFocus(el, html) {
    const active = document.activeElement;
    const key = active && el.contains(active) ? active.dataset.focusKey : null;
    el.innerHTML = html;
    if (key) {
      const again = el.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
  }

  async function refresh() {
    try {
      const response = await fetch(api, { headers: { Accept: "application/json" }, cache: "no-store" });
      const data = await response.json();
      if (!response.ok) throw new Error(data.error || response.statusText);
      applyFigures(data);
      if (state) state.textContent = "";
      body.dataset.refreshedAt = String(Date.now());
    } catch (error) {
      if (state) {
        state.textContent = `ข้อมูลไม่อัปเดต (figures not updated): ${error.message}`;
      }
    } finally {
      setTimeout(refresh, refreshMs);
    }
  }

  if (api) setTimeout(refresh, refreshMs);

  // -- the province table: sort and filter, kept across refreshes -----------------------------
  const table = document.getElementById("province-table");
  if (table) {
    const tbody = table.tBodies[0];
    const headers = Array.from(table.tHead.rows[0].cells);
    const filter = document.getElementById("filter");
    const statusFilter = document.getElementById("status-filter");
    const campaignOnly = document.getElementById("campaign-only");
    const count = document.getElementById("row-count");
    let sortKey = 0;
    let ascending = true;

    function sortValue(row, numeric) {
      const cell = row.cells[sortKey];
      const raw = cell ? cell.dataset.sort || cell.textContent : "";
      return numeric ? Number(raw) : raw;
    }

    function apply() {
      const numeric = headers[sortKey].querySelector("button").hasAttribute("data-numeric");
      const rows = Array.from(tbody.rows);
      rows.sort((a, b) => {
        const x = sortValue(a, numeric);
        const y = sortValue(b, numeric);
        const order = numeric ? x - y : String(x).localeCompare(String(y), "th");
        return ascending ? order : -order;
      });
      const q = filter.value.trim().toLowerCase();
      const status = statusFilter.value;
      let shown = 0;
      for (const row of rows) {
        const visible =
          (!q || row.dataset.search.includes(q)) &&
          (!status || row.dataset.status === status) &&
          (!campaignOnly.checked || row.dataset.campaign === "1");
        row.hidden = !visible;
        if (visible) shown += 1;
        tbody.appendChild(row);
      }
      count.textContent = `แสดง ${shown} จาก ${rows.length} จังหวัด (showing ${shown} of ${rows.length} provinces)`;
      headers.forEach((th, i) => {
        if (i === sortKey) th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        else th.removeAttribute("aria-sort");
      });
    }

    headers.forEach((th, i) => {
      th.querySelector("button").addEventListener("click", () => {
        ascending = sortKey === i ? !ascending : true;
        sortKey = i;
        apply();
      });
    });
    for (const control of [filter, statusFilter, campaignOnly]) {
      control.addEventListener("input", apply);
      control.addEventListener("change", apply);
    }
    document.addEventListener("figures", apply);
    apply();
  }

  // -- the live alerts feed (server-sent events) ------------------------------------------------
  const feed = document.getElementById("alerts-feed");
  if (feed && window.EventSource) {
    const empty = document.getElementById("alerts-empty");
    const feedState = document.getElementById("feed-state");
    const keep = 200;
    const after = body.dataset.feedAfter || "";
    const source = new EventSource(`/events/alerts?after=${encodeURIComponent(after)}`);

    function text(tag, className, value, lang) {
      const el = document.createElement(tag);
      if (className) el.className = className;
      el.textContent = value;
      if (lang) el.lang = lang;
      return el;
    }

    function bilingual(className, th, en) {
      const el = text("span", className, `${th} `);
      el.appendChild(text("span", "", en, "en"));
      return el;
    }

    source.addEventListener("alert", (event) => {
      const a = JSON.parse(event.data);
      if (feed.querySelector(`[data-event-id="${CSS.escape(a.event_id)}"]`)) return;
      const li = document.createElement("li");
      li.className = `alert severity-${String(a.severity).toLowerCase()} fresh`;
      li.dataset.eventId = a.event_id;
      li.appendChild(bilingual("alert-sev", a.severity_th, a.severity_en));
      const time = text("time", "", a.occurred_be);
      time.dateTime = a.occurred_at;
      li.appendChild(time);
      const link = text("a", "", a.province_code);
      link.href = `/provinces/${encodeURIComponent(a.province_code)}`;
      li.appendChild(link);
      li.appendChild(bilingual("alert-type", a.type_th, a.type_en));
      li.appendChild(text("span", "alert-msg", a.message_th));
      li.appendChild(text("span", "alert-msg-en", a.message_en, "en"));
      feed.prepend(li);
      while (feed.children.length > keep) feed.lastElementChild.remove();
      if (empty) empty.hidden = true;
      if (feedState) feedState.textContent = "";
    });
    source.addEventListener("open", () => {
      body.dataset.feed = "open";
      if (feedState) feedState.textContent = "";
    });
    source.addEventListener("error", () => {
      body.dataset.feed = "reconnecting";
      if (feedState) feedState.textContent = "กำลังเชื่อมต่อใหม่ (reconnecting)…";
    });
  }
})();
