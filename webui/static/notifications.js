"use strict";
// Notification routes (admin): list (GET /api/notification-routes), add (POST), enable/disable (PATCH),
// delete (DELETE); and the outbox (GET /api/notifications). Every cell is built with textContent.
(() => {
  const P = window.Plant;
  const { $ } = P;
  const { say, fail } = P.feedback($("#notify-message"), $("#notify-error"));

  function el(tag, text, attrs = {}) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }
  const when = (ts) => (ts ? P.when(ts) : "—");
  // Codes as people read them (the codes stay in the API's bodies and the rows' data attributes).
  const CHANNEL_TEXT = { email: _("e-mail"), webhook: _("webhook") };
  const EVENT_TEXT = { raise: _("raise"), clear: _("clear"), escalate: _("escalate") };
  const STATUS_TEXT = { pending: _("pending"), sent: _("sent"), failed: _("failed"), skipped: _("skipped") };
  const text = (map, code) => map[code] || code;

  function cell(label, text, tag = "td") {
    return el(tag, text === null || text === undefined || text === "" ? "—" : text, { "data-label": label });
  }

  function routeRow(r) {
    const tr = el("tr", null, { "data-route": r.id, "data-enabled": String(r.enabled) });
    tr.append(cell(_("Name"), r.name, "th"), cell(_("Channel"), text(CHANNEL_TEXT, r.channel)), cell(_("Target"), r.target),
      cell(_("Severity"), P.severityLabel(r.min_severity)), cell(_("Scope"), r.scope),
      cell(_("Events"), r.escalate_after_min ? _("escalate after {n} min", { n: r.escalate_after_min })
        : r.events.map((e) => text(EVENT_TEXT, e)).join(", ")),
      cell(_("State"), r.enabled ? _("enabled") : _("disabled")),
      cell(_("Changed"), `${r.updated_by} · ${when(r.updated_at)}`));
    const actions = el("td", null, { class: "actions" });
    const toggle = el("button", r.enabled ? _("Disable") : _("Enable"), { type: "button", class: "toggle" });
    toggle.addEventListener("click", () => change("PATCH", r, { enabled: !r.enabled },
      r.enabled ? _("{name}: disabled.", { name: r.name }) : _("{name}: enabled.", { name: r.name })));
    const remove = el("button", _("Delete"), { type: "button", class: "remove danger" }); // i18n-skip: classes
    remove.addEventListener("click", () => {
      if (window.confirm(_("Delete the route {name}?", { name: r.name }))) {
        change("DELETE", r, undefined, _("{name}: deleted.", { name: r.name }));
      }
    });
    actions.append(toggle, " ", remove);
    tr.append(actions);
    return tr;
  }

  function fill(table, rows, empty, columns) {
    const body = table.querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = el("tr", null, { class: "empty" });
      tr.append(el("td", empty, { colspan: String(columns) }));
      body.append(tr);
    } else {
      body.append(...rows);
    }
    table.dataset.state = "ready";
    table.dataset.count = String(rows.length);
  }

  async function loadRoutes() {
    const table = $("#routes");
    try {
      const items = (await P.api("GET", "/api/notification-routes")).items || [];
      fill(table, items.map(routeRow), _("No route yet: nobody is notified."), 9);
    } catch (err) {
      table.dataset.state = "error";
      fail(_("Could not load the routes: {error}", { error: err.message }));
    }
  }

  function outboxRow(n) {
    const tr = el("tr", null, { "data-status": n.status });
    tr.append(cell("#", n.id, "th"), cell(_("Alarm"), n.alarm_id),
      cell(_("Route"), n.route || _("#{id} (deleted)", { id: String(n.route_id) })),
      cell(_("Event"), text(EVENT_TEXT, n.event)), cell(_("Status"), text(STATUS_TEXT, n.status)),
      cell(_("Attempts"), P.num(n.attempts, 0)),
      cell(_("Created"), when(n.created_at)),
      cell(_("Sent"), n.sent_at ? when(n.sent_at) : n.next_attempt_at ? _("next try {when}", { when: when(n.next_attempt_at) }) : ""),
      cell(_("Last error"), n.last_error));
    return tr;
  }

  async function loadOutbox() {
    const table = $("#outbox");
    try {
      const items = (await P.api("GET", "/api/notifications?per_page=50")).items || [];
      fill(table, items.map(outboxRow), _("Nothing sent yet."), 9);
    } catch (err) {
      table.dataset.state = "error";
      fail(_("Could not load the notifications: {error}", { error: err.message }));
    }
  }

  async function change(method, r, body, done) {
    try {
      await P.api(method, `/api/notification-routes/${encodeURIComponent(r.id)}`, body);
      say(done);
    } catch (err) {
      fail(_("{name}: not changed: {error}", { name: r.name, error: err.message }));
    }
    await loadRoutes();
  }

  $("#route-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const escalate = f.elements.escalate_after_min.value.trim();
    const body = {
      name: f.elements.name.value, channel: f.elements.channel.value, target: f.elements.target.value,
      min_severity: f.elements.min_severity.value, scope: f.elements.scope.value.trim(),
      escalate_after_min: escalate ? Number(escalate) : null,
    };
    if (!escalate) body.events = ["raise", "clear"].filter((e) => f.elements[e].checked);
    try {
      const r = await P.api("POST", "/api/notification-routes", body);
      say(_("Route {name} added.", { name: r.name }));
      f.reset();
    } catch (err) {
      fail(_("Not added: {error}", { error: err.message }));
    }
    await loadRoutes();
  });

  loadRoutes();
  loadOutbox();
  setInterval(loadOutbox, 15000); // the notifier works in the background: show its progress
})();
