"use strict";
// The audit trail (admin): GET /api/audit with the filters of the page's URL (?action=&actor=&start=&end=&page=),
// so a filtered view can be bookmarked or sent; times in the plant's zone, with the zone.
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const PER_PAGE = 50;
  const errorEl = $("#audit-error");
  const fail = (text) => P.showMessage(errorEl, text);

  // The URL holds UTC ISO times (what the API takes); the inputs show the plant's wall time.
  const url = new URL(window.location.href);
  const filters = () => {
    const out = {};
    for (const k of ["action", "actor", "start", "end"]) if (url.searchParams.get(k)) out[k] = url.searchParams.get(k);
    return out;
  };
  const initial = filters();
  if (initial.start) $("#f-start").value = P.isoToLocalInput(initial.start);
  if (initial.end) $("#f-end").value = P.isoToLocalInput(initial.end);

  // {"alarm": 12, "note": "..."} -> "alarm=12 · note=..." (text, escaped by the caller).
  const details = (d) => Object.entries(d || {})
    .map(([k, v]) => `${k}=${v === null ? "—" : typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");

  function row(e) {
    return `<tr data-id="${esc(e.id)}" data-action="${esc(e.action)}">` +
      `<td class="num" data-label="#">${esc(e.id)}</td>` +
      `<td data-label="When"><time datetime="${esc(e.at)}">${esc(P.formatTime(e.at))}</time></td>` +
      `<td data-label="Who">${e.actor ? esc(e.actor) : '<span class="muted">system</span>'}</td>` +
      `<td data-label="From">${e.address ? esc(e.address) : "—"}</td>` +
      `<td data-label="Action"><code>${esc(e.action)}</code></td>` +
      `<td data-label="Details" title="SHA-256 ${esc(e.hash)}">${esc(details(e.details))}</td></tr>`;
  }

  function csvLinks(f) {
    $("#audit-csv").href = `/api/audit.csv${P.query(f)}`;
    $("#audit-csv-sheet").href = `/api/audit.csv${P.query({ ...f, format: "spreadsheet" })}`;
  }

  async function load(page) {
    const f = filters();
    csvLinks(f);
    const table = $("#audit");
    try {
      const data = await P.api("GET", `/api/audit${P.query({ ...f, page, per_page: PER_PAGE })}`);
      $("#audit tbody").innerHTML = data.items.length ? data.items.map(row).join("")
        : '<tr class="empty"><td colspan="6">No entry matches.</td></tr>';
      pager.show(data.page, data.pages, `Page ${data.page} of ${data.pages} (${data.total} entries)`);
      table.dataset.state = "ready";
      table.dataset.count = String(data.items.length);
      fail("");
      if (page > 1) url.searchParams.set("page", String(page)); else url.searchParams.delete("page");
      window.history.replaceState(null, "", url);
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the audit trail: ${err.message}`);
    }
  }
  const pager = P.pager("audit", load);

  // The form rewrites the URL (a bookmarkable filter), then loads page 1.
  $("#audit-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const set = (k, v) => (v ? url.searchParams.set(k, v) : url.searchParams.delete(k));
    set("action", $("#f-action").value.trim());
    set("actor", $("#f-actor").value.trim());
    set("start", P.localInputToIso($("#f-start").value));
    set("end", P.localInputToIso($("#f-end").value));
    url.searchParams.delete("page");
    window.history.pushState(null, "", url);
    load(1);
  });
  window.addEventListener("popstate", () => window.location.reload());

  load(Number(url.searchParams.get("page")) || 1);
})();
