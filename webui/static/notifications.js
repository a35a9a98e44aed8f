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

  function cell(label, text, tag = "td") {
    return el(tag, text === null || text === undefined || text === "" ? "—" : text, { "data-label": label });
  }

  function routeRow(r) {
    const tr = el("tr", null, { "data-route": r.id, "data-enabled": String(r.enabled) });
    tr.append(cell("Name", r.name, "th"), cell("Channel", r.channel), cell("Target", r.target),
      cell("Severity", r.min_severity), cell("Scope", r.scope),
      cell("Events", r.escalate_after_min ? `escalate after ${r.escalate_after_min} min` : r.events.join(", ")),
      cell("State", r.enabled ? "enabled" : "disabled"),
      cell("Changed", `${r.updated_by} · ${when(r.updated_at)}`));
    const actions = el("td", null, { class: "actions" });
    const toggle = el("button", r.enabled ? "Disable" : "Enable", { type: "button", class: "toggle" });
    toggle.addEventListener("click", () => change("PATCH", r, { enabled: !r.enabled },
      `${r.name}: ${r.enabled ? "disabled" : "enabled"}.`));
    const remove = el("button", "Delete", { type: "button", class: "remove danger" });
    remove.addEventListener("click", () => {
      if (window.confirm(`Delete the route ${r.name}?`)) change("DELETE", r, undefined, `${r.name}: deleted.`);
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
      fill(table, items.map(routeRow), "No route yet: nobody is notified.", 9);
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the routes: ${err.message}`);
    }
  }

  function outboxRow(n) {
    const tr = el("tr", null, { "data-status": n.status });
    tr.append(cell("#", n.id, "th"), cell("Alarm", n.alarm_id), cell("Route", n.route || `#${n.route_id} (deleted)`),
      cell("Event", n.event), cell("Status", n.status), cell("Attempts", n.attempts),
      cell("Created", when(n.created_at)),
      cell("Sent", n.sent_at ? when(n.sent_at) : n.next_attempt_at ? `next try ${when(n.next_attempt_at)}` : ""),
      cell("Last error", n.last_error));
    return tr;
  }

  async function loadOutbox() {
    const table = $("#outbox");
    try {
      const items = (await P.api("GET", "/api/notifications?per_page=50")).items || [];
      fill(table, items.map(outboxRow), "Nothing sent yet.", 9);
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the notifications: ${err.message}`);
    }
  }

  async function change(method, r, body, done) {
    try {
      await P.api(method, `/api/notification-routes/${encodeURIComponent(r.id)}`, body);
      say(done);
    } catch (err) {
      fail(`${r.name}: not changed: ${err.message}`);
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
      say(`Route ${r.name} added.`);
      f.reset();
    } catch (err) {
      fail(`Not added: ${err.message}`);
    }
    await loadRoutes();
  });

  loadRoutes();
  loadOutbox();
  setInterval(loadOutbox, 15000); // the notifier works in the background: show its progress
})();
