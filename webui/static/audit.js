"use strict";
// The audit trail (admin): GET /api/audit with the filters of the page's URL (?action=&actor=&start=&end=&page=),
// so a filtered view can be bookmarked or sent; times in the plant's zone, with the zone.
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  // {"alarm": 12, "note": "..."} -> "alarm=12 · note=..." (text, escaped by the caller).
  const details = (d) => Object.entries(d || {})
    .map(([k, v]) => `${k}=${v === null ? "—" : typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");

  // Column names, repeated on each cell for the phone layout (data-label).
  const L = { when: _("When"), who: _("Who"), from: pgettext("client address", "From"), action: _("Action"), details: _("Details") };
  const dl = (key) => `data-label="${esc(L[key])}"`;

  // The action stays a code (login.ok, user.update...): what the filter takes.
  function row(e) {
    return `<tr data-id="${esc(e.id)}" data-action="${esc(e.action)}">` +
      `<td class="num" data-label="#">${esc(e.id)}</td>` +
      `<td ${dl("when")}><time datetime="${esc(e.at)}">${esc(P.formatTime(e.at))}</time></td>` +
      `<td ${dl("who")}>${e.actor ? esc(e.actor) : `<span class="muted">${esc(_("system"))}</span>`}</td>` +
      `<td ${dl("from")}>${e.address ? esc(e.address) : "—"}</td>` +
      `<td ${dl("action")}><code>${esc(e.action)}</code></td>` +
      // translate="no": the details are recorded as they were (English), like the codes.
      `<td ${dl("details")} translate="no" title="SHA-256 ${esc(e.hash)}">${esc(details(e.details))}</td></tr>`; // i18n-skip: SHA-256
  }

  function csvLinks(f) {
    $("#audit-csv").href = `/api/audit.csv${P.query(f)}`;
    $("#audit-csv-sheet").href = `/api/audit.csv${P.query({ ...f, format: "spreadsheet" })}`;
  }

  P.urlList({
    name: "audit", path: "/api/audit", keys: ["action", "actor", "start", "end"], before: csvLinks,
    count: (n) => ngettext("{n} entry", "{n} entries", n),
    failed: (error) => _("Could not load the audit trail: {error}", { error }),
    fill: (tbody, items) => {
      tbody.innerHTML = items.length ? items.map(row).join("")
        : `<tr class="empty"><td colspan="6">${esc(_("No entry matches."))}</td></tr>`;
    },
  });
})();
