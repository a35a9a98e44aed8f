"use strict";
// Legacy HTTP senders' tokens (admin): list (GET /api/device-tokens), create (POST; the token is
// shown once, with a ready curl line), revoke (DELETE ?id=; the row stays, marked revoked).
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const message = $("#senders-message");
  const error = $("#senders-error");
  const { say, fail } = P.feedback(message, error);
  // Column names, repeated on each cell for the phone layout (data-label).
  const L = { device: _("Device"), label: _("Label"), route: _("Sends to"), created: _("Created"), used: _("Last used"), state: _("State") };
  const dl = (key) => `data-label="${esc(L[key])}"`;

  const SAMPLE_READING = "unityId=UNIT&tmp_Cuve=3.2&tmp_Ext=11.4&poids_Lait_Cuve=4000&mesure_PH=7.0&mesure_K=40" +
    "&concentration_NaCl=1.3&niv_Bact_Salmonelle=20&niv_Bact_Ecoli=40&niv_Bact_Listeria=30";

  function example(item, token) {
    const base = location.origin;
    if (item.kind === "unit") {
      const unit = item.device.split("/")[1];
      return `curl -X POST ${base}/collector/info -H 'Authorization: Bearer ${token}' \\\n` + // i18n-skip: a shell command
        `     -d '${SAMPLE_READING.replace("UNIT", unit)}'`; // i18n-skip: a shell command
    }
    return `curl "${base}/webhook/?power=100.3&voltage=230.0&current=0.43&energy=8.9" \\\n` + // i18n-skip: a shell command
      `     -H 'Authorization: Bearer ${token}'`; // i18n-skip: a shell command
  }

  async function load() {
    const table = $("#tokens");
    let items;
    try {
      items = (await P.api("GET", "/api/device-tokens")).items || [];
    } catch (err) {
      table.dataset.state = "error";
      fail(_("Could not load the tokens: {error}", { error: err.message }));
      return;
    }
    $("#tokens tbody").innerHTML = items.length ? items.map((t) => {
      // The catalog's text is trusted; its parameters are escaped (the time tag is HTML built by Plant).
      const state = t.active ? esc(pgettext("token", "active")) : _("revoked {when} by {user}", { when: P.timeTag(t.revoked_at), user: esc(t.revoked_by) });
      const action = t.active
        ? `<button type="button" class="revoke danger" data-id="${esc(t.id)}" data-device="${esc(t.device)}">${esc(_("Revoke"))}</button>`
        : "";
      return `<tr data-id="${esc(t.id)}" data-device="${esc(t.device)}" data-active="${t.active}">` +
        `<th scope="row" ${dl("device")}><code>${esc(t.device)}</code></th>` +
        `<td ${dl("label")}>${t.label ? esc(t.label) : "—"}</td>` +
        `<td ${dl("route")}><code>${esc(t.route)}</code></td>` +
        `<td ${dl("created")}>${P.timeTag(t.created_at)} <small>${esc(_("by {user}", { user: t.created_by }))}</small></td>` +
        `<td ${dl("used")}>${t.last_used_at ? P.timeTag(t.last_used_at) : esc(_("never"))}</td>` +
        `<td ${dl("state")}>${state}</td>` +
        `<td class="actions">${action}</td></tr>`;
    }).join("") : `<tr class="empty"><td colspan="7">${esc(_("No token yet."))}</td></tr>`;
    table.dataset.state = "ready";
    table.dataset.count = String(items.length);
  }

  $("#tokens").addEventListener("click", async (ev) => {
    const button = ev.target.closest("button.revoke");
    if (!button) return;
    const { id, device } = button.dataset;
    if (!window.confirm(_("Revoke this token of {device}? The sender is refused from now on.", { device }))) return;
    button.disabled = true;
    try {
      await P.api("DELETE", `/api/device-tokens?id=${encodeURIComponent(id)}`);
      say(_("Token of {device} revoked.", { device }));
      await load();
    } catch (err) {
      button.disabled = false;
      fail(_("Not revoked: {error}", { error: err.message }));
    }
  });

  $("#token-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const body = { device: form.device.value.trim() };
    if (form.label.value.trim()) body.label = form.label.value.trim();
    try {
      const created = await P.api("POST", "/api/device-tokens", body);
      $("#new-token-value").textContent = created.token;
      $("#new-token-example").textContent = example(created, created.token);
      $("#new-token").hidden = false;
      say(_("Token created for {device}.", { device: created.device }));
      form.reset();
      await load();
    } catch (err) {
      $("#new-token").hidden = true;
      fail(_("Not created: {error}", { error: err.message }));
    }
  });

  load();
})();
