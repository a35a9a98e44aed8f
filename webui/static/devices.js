"use strict";
// The device registry (admin): list (GET /api/devices), rename and disable/enable (PATCH), remove and
// restore (POST .../remove, .../restore), and register a device before it connects (PATCH creates it).
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const { say, fail } = P.feedback($("#devices-message"), $("#devices-error"));
  let devices = [];

  // The key's slash stays a slash (the route takes a path); each part is escaped.
  const deviceUrl = (device, action = "") =>
    `/api/devices/${device.split("/").map(encodeURIComponent).join("/")}${action ? `/${action}` : ""}`;
  const label = (d) => (d.name ? `${d.name} (${d.device})` : d.device);
  const dash = (v) => (v === null || v === undefined || v === "" ? "—" : esc(v));

  // "SPSW-201XE16EU <small>Gen 2 · 1.4.4</small>"
  function model(d) {
    const more = [d.generation !== null && d.generation !== undefined ? `Gen ${esc(d.generation)}` : "", d.firmware ? esc(d.firmware) : ""]
      .filter(Boolean).join(" · ");
    return `${dash(d.model)}${more ? `<br><small>${more}</small>` : ""}`;
  }

  function stateCell(d) {
    const parts = [`<span class="badge" data-state="${esc(d.state || "unknown")}">${esc(d.state || "unknown")}</span>`];
    if (d.disabled) parts.push('<span class="badge" data-state="disabled">disabled</span>');
    if (d.removed_at) parts.push(`<br><small class="removed">removed ${P.timeTag(d.removed_at)}</small>`);
    return parts.join(" ");
  }

  function row(d) {
    const id = `name-${d.device.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    return `<tr data-device="${esc(d.device)}" data-kind="${esc(d.kind)}" data-disabled="${d.disabled}" ` +
      `data-removed="${d.removed_at ? "true" : "false"}"${d.removed_at ? ' class="removed"' : ""}>` +
      `<th scope="row" data-label="Device" title="${esc(d.device)}">${esc(d.kind === "meter" ? d.device.slice("meters/".length) : d.device)}<br><small>${esc(d.kind)}</small></th>` +
      `<td data-label="Name"><form class="rename" data-device="${esc(d.device)}">` +
      `<label class="visually-hidden" for="${id}">Name of ${esc(d.device)}</label>` +
      `<input id="${id}" name="name" maxlength="64" size="12" value="${esc(d.name || "")}" placeholder="(none)" autocomplete="off"> ` +
      `<button type="submit">Save</button></form></td>` +
      `<td data-label="State">${stateCell(d)}</td>` +
      `<td data-label="Model">${model(d)}</td>` +
      `<td data-label="Seen">${d.first_seen ? `${P.timeTag(d.first_seen)} –<br>${P.timeTag(d.last_seen)}` : '<span class="muted">never (registered)</span>'}</td>` +
      `<td data-label="Changed">${d.updated_by ? `${esc(d.updated_by)}<br><small>${P.timeTag(d.updated_at)}</small>` : "—"}</td>` +
      `<td class="actions">` +
      `<button type="button" class="toggle" data-device="${esc(d.device)}" data-disabled="${d.disabled}">${d.disabled ? "Enable" : "Disable"}</button> ` +
      (d.removed_at
        ? `<button type="button" class="restore" data-device="${esc(d.device)}">Restore</button>`
        : `<button type="button" class="remove danger" data-device="${esc(d.device)}">Remove</button>`) +
      "</td></tr>";
  }

  async function load() {
    const table = $("#devices");
    try {
      devices = (await P.api("GET", "/api/devices")).items || [];
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the devices: ${err.message}`);
      return;
    }
    $("#devices tbody").innerHTML = devices.length ? devices.map(row).join("")
      : '<tr class="empty"><td colspan="7">No device yet: the bridge registers each one when it first hears from it.</td></tr>';
    table.dataset.state = "ready";
    table.dataset.count = String(devices.length);
  }

  // PATCH a body ({name} and/or {disabled}), or POST an action ("remove", "restore").
  async function change(device, what, done) {
    try {
      const d = typeof what === "string"
        ? await P.api("POST", deviceUrl(device, what))
        : await P.api("PATCH", deviceUrl(device), what);
      say(done(d));
      await load();
    } catch (err) {
      fail(`${device}: not changed: ${err.message}`);
      await load();
    }
  }

  $("#devices").addEventListener("submit", (ev) => {
    const form = ev.target.closest("form.rename");
    if (!form) return;
    ev.preventDefault();
    const name = form.elements.namedItem("name").value.trim();
    form.querySelector("button").disabled = true;
    change(form.dataset.device, { name: name || null },
      (d) => (d.name ? `${d.device} is now named ${d.name}.` : `${d.device} has no name any more.`));
  });

  $("#devices").addEventListener("click", (ev) => {
    const button = ev.target.closest("button.toggle, button.remove, button.restore");
    if (!button) return;
    const device = button.dataset.device;
    const d = devices.find((x) => x.device === device) || { device };
    if (button.classList.contains("toggle")) {
      const disable = button.dataset.disabled !== "true";
      if (disable && !window.confirm(`Disable ${label(d)}? The bridge will reject its data.`)) return;
      button.disabled = true;
      change(device, { disabled: disable }, (x) => `${label(x)} is ${x.disabled ? "disabled: its data is rejected" : "enabled"}.`);
    } else if (button.classList.contains("remove")) {
      if (!window.confirm(`Remove ${label(d)} from the lists? Its data stays.`)) return;
      button.disabled = true;
      change(device, "remove", (x) => `${label(x)} is removed from the lists (its data stays).`);
    } else {
      button.disabled = true;
      change(device, "restore", (x) => `${label(x)} is back in the lists.`);
    }
  });

  $("#register-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const field = (n) => form.elements.namedItem(n);
    const device = field("device").value.trim();
    const body = { disabled: field("disabled").checked };
    if (field("name").value.trim()) body.name = field("name").value.trim();
    change(device, body, (d) => {
      form.reset();
      return `${label(d)} is registered${d.disabled ? " (disabled)" : ""}.`;
    });
  });

  load();
})();
