"use strict";
// The audit trail (admin): GET /api/audit with the filters of the page's URL (?action=&actor=&start=&end=&page=),
// so a filtered view can be bookmarked or sent; times in the plant's zone, with the zone.
(() => {
  const P = window.Plant;
  const { $, esc } = P;
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

  P.urlList({
    name: "audit", path: "/api/audit", keys: ["action", "actor", "start", "end"], noun: "entries",
    what: "the audit trail", before: csvLinks,
    fill: (tbody, items) => {
      tbody.innerHTML = items.length ? items.map(row).join("")
        : '<tr class="empty"><td colspan="6">No entry matches.</td></tr>';
    },
  });
})();
