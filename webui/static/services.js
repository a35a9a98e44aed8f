"use strict";
// Services (admin): GET /api/health every 10 s. One row per service instance: this web server, each
// bridge that reports (a report older than 3 of its periods is "stale": the bridge stopped reporting),
// the notifier as its outbox shows it. Instance names and check details are the services' own text.
(() => {
  const P = window.Plant;
  const REFRESH_MS = 10000;
  const SERVICE_NAMES = () => ({ webui: _("Web server"), bridge: _("Bridge"), notifier: _("Notifier") });
  const CHECK_NAMES = () => ({
    broker: _("broker"), database: _("database"), ingest: _("ingest"), outbox: _("outbox"),
  });

  function seconds(v) {
    if (v === null || v === undefined) return "—";
    return v < 120 ? _("{n} s", { n: P.num(v, 1) }) : _("{n} min", { n: P.num(v / 60, 0) });
  }
  const FIGURES = () => ({
    ingest_lag_s: [_("ingest lag"), seconds],
    last_commit_age_s: [_("last commit"), (v) => (v === null ? "—" : _("{age} ago", { age: seconds(v) }))],
    queue_depth: [_("queue"), (v) => P.num(v, 0)],
    pending: [_("pending"), (v) => P.num(v, 0)],
    oldest_pending_s: [_("oldest pending"), seconds],
    failed_24h: [_("failed (24 h)"), (v) => P.num(v, 0)],
  });

  function cell(tr, label, text) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function row(s) {
    const tr = document.createElement("tr");
    tr.dataset.service = s.service;
    tr.dataset.ok = String(s.ok);
    cell(tr, _("Service"), SERVICE_NAMES()[s.service] || s.service);
    cell(tr, _("Instance"), s.instance).translate = false;
    const state = cell(tr, _("State"), s.stale ? _("no report") : s.ok ? _("OK") : _("failing"));
    state.className = s.ok ? "state-ok" : "state-bad";
    const names = CHECK_NAMES();
    const checks = Object.entries(s.checks).map(([name, c]) => {
      const word = c.ok === true ? _("OK") : c.ok === false ? _("failing") : _("unknown");
      return c.detail ? `${names[name] || name}: ${word} (${c.detail})` : `${names[name] || name}: ${word}`;
    });
    cell(tr, _("Checks"), checks.join("; "));
    const figures = FIGURES();
    cell(tr, _("Figures"), Object.entries(s.values)
      .filter(([k]) => figures[k])
      .map(([k, v]) => `${figures[k][0]}: ${figures[k][1](v)}`).join("; ") || "—");
    cell(tr, _("Reported"), "").innerHTML = P.timeTag(s.ts); // timeTag escapes
    return tr;
  }

  async function load() {
    const table = P.$("#services");
    try {
      const data = await P.api("GET", "/api/health");
      const body = table.tBodies[0];
      body.replaceChildren(...data.services.map(row));
      if (!data.services.some((s) => s.service === "bridge")) {
        const tr = document.createElement("tr");
        tr.dataset.service = "bridge";
        tr.dataset.ok = "false";
        cell(tr, _("Service"), _("Bridge"));
        const td = cell(tr, _("State"), _("No bridge reports its health: readings are not being stored."));
        td.colSpan = 5;
        td.className = "state-bad";
        body.appendChild(tr);
      }
      table.dataset.state = "ready";
      P.showMessage(P.$("#services-error"), "");
    } catch (err) {
      P.showMessage(P.$("#services-error"), _("Could not load the services' health: {error}", { error: err.message }));
    }
  }
  load();
  setInterval(load, REFRESH_MS);
})();
