"use strict";
// Legacy HTTP senders' tokens (admin): list (GET /api/device-tokens), create (POST; the token is
// shown once, with a ready curl line), revoke (DELETE ?id=; the row stays, marked revoked).
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const message = $("#senders-message");
  const error = $("#senders-error");
  const { say, fail } = P.feedback(message, error);

  const SAMPLE_READING = "unityId=UNIT&tmp_Cuve=3.2&tmp_Ext=11.4&poids_Lait_Cuve=4000&mesure_PH=7.0&mesure_K=40" +
    "&concentration_NaCl=1.3&niv_Bact_Salmonelle=20&niv_Bact_Ecoli=40&niv_Bact_Listeria=30";

  function example(item, token) {
    const base = location.origin;
    if (item.kind === "unit") {
      const unit = item.device.split("/")[1];
      return `curl -X POST ${base}/collector/info -H 'Authorization: Bearer ${token}' \\\n` +
        `     -d '${SAMPLE_READING.replace("UNIT", unit)}'`;
    }
    return `curl "${base}/webhook/?power=100.3&voltage=230.0&current=0.43&energy=8.9" \\\n` +
      `     -H 'Authorization: Bearer ${token}'`;
  }

  async function load() {
    const table = $("#tokens");
    let items;
    try {
      items = (await P.api("GET", "/api/device-tokens")).items || [];
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the tokens: ${err.message}`);
      return;
    }
    $("#tokens tbody").innerHTML = items.length ? items.map((t) => {
      const state = t.active ? "active" : `revoked ${P.timeTag(t.revoked_at)} by ${esc(t.revoked_by)}`;
      const action = t.active
        ? `<button type="button" class="revoke danger" data-id="${esc(t.id)}" data-device="${esc(t.device)}">Revoke</button>`
        : "";
      return `<tr data-id="${esc(t.id)}" data-device="${esc(t.device)}" data-active="${t.active}">` +
        `<th scope="row" data-label="Device"><code>${esc(t.device)}</code></th>` +
        `<td data-label="Label">${t.label ? esc(t.label) : "—"}</td>` +
        `<td data-label="Sends to"><code>${esc(t.route)}</code></td>` +
        `<td data-label="Created">${P.timeTag(t.created_at)} <small>by ${esc(t.created_by)}</small></td>` +
        `<td data-label="Last used">${t.last_used_at ? P.timeTag(t.last_used_at) : "never"}</td>` +
        `<td data-label="State">${state}</td>` +
        `<td class="actions">${action}</td></tr>`;
    }).join("") : '<tr class="empty"><td colspan="7">No token yet.</td></tr>';
    table.dataset.state = "ready";
    table.dataset.count = String(items.length);
  }

  $("#tokens").addEventListener("click", async (ev) => {
    const button = ev.target.closest("button.revoke");
    if (!button) return;
    const { id, device } = button.dataset;
    if (!window.confirm(`Revoke this token of ${device}? The sender is refused from now on.`)) return;
    button.disabled = true;
    try {
      await P.api("DELETE", `/api/device-tokens?id=${encodeURIComponent(id)}`);
      say(`Token of ${device} revoked.`);
      await load();
    } catch (err) {
      button.disabled = false;
      fail(`Not revoked: ${err.message}`);
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
      say(`Token created for ${created.device}.`);
      form.reset();
      await load();
    } catch (err) {
      $("#new-token").hidden = true;
      fail(`Not created: ${err.message}`);
    }
  });

  load();
})();
