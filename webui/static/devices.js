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
    `/api/devices/${device.split("/").map(encodeURIComponent).join("/")}${action ? "/" + action : ""}`;
  const label = (d) => (d.name ? `${d.name} (${d.device})` : d.device);
  const dash = (v) => (v === null || v === undefined || v === "" ? "—" : esc(v));
  const KIND_TEXT = { unit: _("unit"), meter: _("meter") };
  // Column names, repeated on each cell for the phone layout (data-label).
  const L = { device: _("Device"), name: _("Name"), state: _("State"), model: _("Model"), seen: _("Seen"), changed: _("Changed") };
  const dl = (key) => `data-label="${esc(L[key])}"`;

  // "SPSW-201XE16EU <small>Gen 2 · 1.4.4</small>"
  function model(d) {
    const more = [d.generation !== null && d.generation !== undefined ? esc(_("Gen {generation}", { generation: String(d.generation) })) : "",
      d.firmware ? esc(d.firmware) : ""]
      .filter(Boolean).join(" · ");
    return `${dash(d.model)}${more ? `<br><small>${more}</small>` : ""}`;
  }

  function stateCell(d) {
    const parts = [`<span class="badge" data-state="${esc(d.state || "unknown")}">${esc(P.deviceStateLabel(d.state))}</span>`];
    if (d.disabled) parts.push(`<span class="badge" data-state="disabled">${esc(_("disabled"))}</span>`);
    // The catalog's text is trusted; the time tag is HTML built by Plant.timeTag (escaped there).
    if (d.removed_at) parts.push(`<br><small class="removed">${_("removed {when}", { when: P.timeTag(d.removed_at) })}</small>`);
    return parts.join(" ");
  }

  // (Translated texts are computed outside the HTML's quoted attributes: the extractor misses them there.)
  function row(d) {
    const none = esc(_("(none)"));
    const id = `name-${d.device.replace(/[^A-Za-z0-9_-]/g, "_")}`;
    const removed = d.removed_at ? "true" : "false";
    return `<tr data-device="${esc(d.device)}" data-kind="${esc(d.kind)}" data-disabled="${d.disabled}" data-removed="${removed}"${d.removed_at ? ' class="removed"' : ""}>` +
      `<th scope="row" ${dl("device")} title="${esc(d.device)}">${esc(d.kind === "meter" ? d.device.slice("meters/".length) : d.device)}<br><small>${esc(KIND_TEXT[d.kind] || d.kind)}</small></th>` +
      `<td ${dl("name")}><form class="rename" data-device="${esc(d.device)}">` +
      `<label class="visually-hidden" for="${id}">${esc(_("Name of {device}", { device: d.device }))}</label>` +
      `<input id="${id}" name="name" maxlength="64" size="12" value="${esc(d.name || "")}" placeholder="${none}" autocomplete="off"> ` +
      `<button type="submit">${esc(_("Save"))}</button></form></td>` +
      `<td ${dl("state")}>${stateCell(d)}</td>` +
      `<td ${dl("model")}>${model(d)}</td>` +
      `<td ${dl("seen")}>${d.first_seen ? `${P.timeTag(d.first_seen)} –<br>${P.timeTag(d.last_seen)}` : `<span class="muted">${esc(_("never (registered)"))}</span>`}</td>` +
      `<td ${dl("changed")}>${d.updated_by ? `${esc(d.updated_by)}<br><small>${P.timeTag(d.updated_at)}</small>` : "—"}</td>` +
      `<td class="actions">` +
      `<button type="button" class="toggle" data-device="${esc(d.device)}" data-disabled="${d.disabled}">${esc(d.disabled ? _("Enable") : _("Disable"))}</button> ` +
      (d.removed_at
        ? `<button type="button" class="restore" data-device="${esc(d.device)}">${esc(_("Restore"))}</button>`
        : `<button type="button" class="remove danger" data-device="${esc(d.device)}">${esc(_("Remove"))}</button>`) +
      "</td></tr>";
  }

  async function load() {
    const table = $("#devices");
    try {
      devices = (await P.api("GET", "/api/devices")).items || [];
    } catch (err) {
      table.dataset.state = "error";
      fail(_("Could not load the devices: {error}", { error: err.message }));
      return;
    }
    $("#devices tbody").innerHTML = devices.length ? devices.map(row).join("")
      : `<tr class="empty"><td colspan="7">${esc(_("No device yet: the bridge registers each one when it first hears from it."))}</td></tr>`;
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
      fail(_("{name}: not changed: {error}", { name: device, error: err.message }));
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
      (d) => (d.name ? _("{device} is now named {name}.", { device: d.device, name: d.name })
        : _("{device} has no name any more.", { device: d.device })));
  });

  $("#devices").addEventListener("click", (ev) => {
    const button = ev.target.closest("button.toggle, button.remove, button.restore"); // i18n-skip: a selector
    if (!button) return;
    const device = button.dataset.device;
    const d = devices.find((x) => x.device === device) || { device };
    if (button.classList.contains("toggle")) {
      const disable = button.dataset.disabled !== "true";
      if (disable && !window.confirm(_("Disable {device}? The bridge will reject its data.", { device: label(d) }))) return;
      button.disabled = true;
      change(device, { disabled: disable }, (x) => (x.disabled ? _("{device} is disabled: its data is rejected.", { device: label(x) })
        : _("{device} is enabled.", { device: label(x) })));
    } else if (button.classList.contains("remove")) {
      if (!window.confirm(_("Remove {device} from the lists? Its data stays.", { device: label(d) }))) return;
      button.disabled = true;
      change(device, "remove", (x) => _("{device} is removed from the lists (its data stays).", { device: label(x) }));
    } else {
      button.disabled = true;
      change(device, "restore", (x) => _("{device} is back in the lists.", { device: label(x) }));
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
      return d.disabled ? _("{device} is registered (disabled).", { device: label(d) }) : _("{device} is registered.", { device: label(d) });
    });
  });

  load();
})();
