"use strict";
// Rejected messages (admin): GET /api/rejected with the filters of the page's URL
// (?source=&reason=&start=&end=&page=), so a filtered view can be bookmarked. Everything a device sent
// (payload, topic, the reason quoting it) is put in the page with textContent only, never as HTML.
(() => {
  const P = window.Plant;
  const PAYLOAD_SHOWN = 300; // characters; the API has the stored (already truncated) text

  function cell(tr, label, text, title) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.textContent = text;
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  }

  function row(m) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(m.id);
    const when = document.createElement("time");
    when.dateTime = m.received_at;
    when.textContent = P.formatTime(m.received_at);
    cell(tr, _("When"), "").appendChild(when);
    cell(tr, _("Source"), m.source || "—");
    cell(tr, _("Reason"), m.reason).translate = false; // the bridge's reason, as stored (English)
    cell(tr, _("Topic"), m.topic).classList.add("mono");
    const shown = m.payload.length > PAYLOAD_SHOWN ? `${m.payload.slice(0, PAYLOAD_SHOWN)}…` : m.payload;
    const more = m.payload_bytes > m.payload.length
      ? ngettext("({n} byte received)", "({n} bytes received)", m.payload_bytes) : "";
    const td = cell(tr, _("Payload"), "", m.payload);
    const code = document.createElement("code");
    code.className = "payload";
    code.textContent = more ? `${shown} ${more}` : shown;
    td.appendChild(code);
    return tr;
  }

  P.urlList({
    name: "rejected", path: "/api/rejected", keys: ["source", "reason", "start", "end"],
    count: (n) => ngettext("{n} message", "{n} messages", n),
    failed: (error) => _("Could not load the rejected messages: {error}", { error }),
    fill: (tbody, items) => {
      tbody.replaceChildren(...items.map(row));
      if (!items.length) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        cell(tr, "", _("No rejected message matches.")).colSpan = 5;
        tbody.appendChild(tr);
      }
    },
  });
})();
