"use strict";
// Rejected messages (admin): GET /api/rejected with the filters of the page's URL
// (?source=&reason=&start=&end=&page=), so a filtered view can be bookmarked. Everything a device sent
// (payload, topic, the reason quoting it) is put in the page with textContent only, never as HTML.
(() => {
  const P = window.Plant;
  const { $ } = P;
  const PER_PAGE = 50;
  const PAYLOAD_SHOWN = 300; // characters; the API has the stored (already truncated) text
  const errorEl = $("#rejected-error");
  const fail = (text) => P.showMessage(errorEl, text);

  const url = new URL(window.location.href);
  const filters = () => {
    const out = {};
    for (const k of ["source", "reason", "start", "end"]) if (url.searchParams.get(k)) out[k] = url.searchParams.get(k);
    return out;
  };
  const initial = filters();
  if (initial.start) $("#f-start").value = P.isoToLocalInput(initial.start);
  if (initial.end) $("#f-end").value = P.isoToLocalInput(initial.end);

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
    cell(tr, "When", "").appendChild(when);
    cell(tr, "Source", m.source || "—");
    cell(tr, "Reason", m.reason);
    cell(tr, "Topic", m.topic).classList.add("mono");
    const shown = m.payload.length > PAYLOAD_SHOWN ? `${m.payload.slice(0, PAYLOAD_SHOWN)}…` : m.payload;
    const more = m.payload_bytes > m.payload.length ? ` (${m.payload_bytes} bytes received)` : "";
    const td = cell(tr, "Payload", "", m.payload);
    const code = document.createElement("code");
    code.className = "payload";
    code.textContent = shown + more;
    td.appendChild(code);
    return tr;
  }

  async function load(page) {
    const table = $("#rejected");
    const body = $("#rejected tbody");
    try {
      const data = await P.api("GET", `/api/rejected${P.query({ ...filters(), page, per_page: PER_PAGE })}`);
      body.replaceChildren(...data.items.map(row));
      if (!data.items.length) {
        const tr = document.createElement("tr");
        tr.className = "empty";
        cell(tr, "", "No rejected message matches.").colSpan = 5;
        body.appendChild(tr);
      }
      pager.show(data.page, data.pages, `Page ${data.page} of ${data.pages} (${data.total} messages)`);
      table.dataset.state = "ready";
      table.dataset.count = String(data.items.length);
      fail("");
      if (page > 1) url.searchParams.set("page", String(page)); else url.searchParams.delete("page");
      window.history.replaceState(null, "", url);
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the rejected messages: ${err.message}`);
    }
  }
  const pager = P.pager("rejected", load);

  $("#rejected-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const set = (k, v) => (v ? url.searchParams.set(k, v) : url.searchParams.delete(k));
    set("source", $("#f-source").value.trim());
    set("reason", $("#f-reason").value.trim());
    set("start", P.localInputToIso($("#f-start").value));
    set("end", P.localInputToIso($("#f-end").value));
    url.searchParams.delete("page");
    window.history.pushState(null, "", url);
    load(1);
  });
  window.addEventListener("popstate", () => window.location.reload());

  load(Number(url.searchParams.get("page")) || 1);
})();
