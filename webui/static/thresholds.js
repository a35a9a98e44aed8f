"use strict";
// Threshold editor (admin): the thresholds in force (GET /api/thresholds), set one (PUT), delete an
// override (DELETE; the "*" defaults can be changed but not deleted), and the audit log.
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const form = $("#threshold-form");
  const message = $("#threshold-message");
  const error = $("#threshold-error");
  const PER_PAGE = 25;
  const changesPager = P.pager("changes", loadChanges);

  const { say, fail } = P.feedback(message, error);
  const limitText = (measure, v) => (v === null || v === undefined ? "—" : P.fmtMeasure(measure, v));

  // -- thresholds --------------------------------------------------------------------------------------------
  let rows = [];
  async function loadThresholds() {
    const table = $("#thresholds");
    try {
      const data = await P.api("GET", "/api/thresholds");
      rows = data.items || [];
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the thresholds: ${err.message}`);
      return;
    }
    // Defaults first, then by scope and measure.
    const order = [...Object.keys(P.config.measures.automate), ...Object.keys(P.config.measures.meter)];
    rows.sort((a, b) => (a.scope === "*") !== (b.scope === "*") ? (a.scope === "*" ? -1 : 1)
      : a.scope.localeCompare(b.scope, undefined, { numeric: true }) || order.indexOf(a.measure) - order.indexOf(b.measure));
    $("#thresholds tbody").innerHTML = rows.length ? rows.map((t, i) =>
      `<tr data-scope="${esc(t.scope)}" data-measure="${esc(t.measure)}"${t.scope === "*" ? ' class="default"' : ""}>` +
      `<td data-label="Scope"><code>${esc(t.scope)}</code></td>` +
      `<td data-label="Measure">${esc(P.measureInfo(t.measure).label)} <small>${esc(t.measure)}</small></td>` +
      `<td class="num" data-label="Low">${limitText(t.measure, t.low)}</td>` +
      `<td class="num" data-label="High">${limitText(t.measure, t.high)}</td>` +
      `<td class="num" data-label="Deadband">${limitText(t.measure, t.deadband)}</td>` +
      `<td data-label="Severity"><span class="sev sev-${esc(t.severity)}">${esc(t.severity)}</span></td>` +
      `<td data-label="Updated">${P.timeTag(t.updated_at)}</td><td data-label="By">${esc(t.updated_by || "—")}</td>` +
      `<td class="actions"><button type="button" class="edit" data-index="${i}">Edit</button>` +
      (t.scope === "*" ? "" : ` <button type="button" class="delete danger" data-index="${i}">Delete</button>`) +
      "</td></tr>",
    ).join("") : '<tr class="empty"><td colspan="9">No threshold.</td></tr>';
    table.dataset.state = "ready";
    table.dataset.count = String(rows.length);
  }

  $("#thresholds").addEventListener("click", async (ev) => {
    const button = ev.target.closest("button");
    if (!button) return;
    const t = rows[Number(button.dataset.index)];
    if (!t) return;
    if (button.classList.contains("edit")) {
      form.scope.value = t.scope;
      form.measure.value = t.measure;
      form.low.value = t.low ?? "";
      form.high.value = t.high ?? "";
      form.deadband.value = t.deadband ?? 0;
      form.severity.value = t.severity;
      form.scrollIntoView({ behavior: "smooth", block: "start" });
      form.low.focus();
      return;
    }
    if (!window.confirm(`Delete the ${t.measure} threshold of ${t.scope}? The wider scope's threshold will apply.`)) return;
    button.disabled = true;
    try {
      await P.api("DELETE", `/api/thresholds${P.query({ scope: t.scope, measure: t.measure })}`);
      say(`Deleted the ${t.measure} threshold of ${t.scope}.`);
      await Promise.all([loadThresholds(), loadChanges(1)]);
    } catch (err) {
      button.disabled = false;
      fail(`Could not delete: ${err.message}`);
    }
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const numberOrNull = (input) => (input.value.trim() === "" ? null : Number(input.value));
    const body = {
      scope: form.scope.value.trim(), measure: form.measure.value,
      low: numberOrNull(form.low), high: numberOrNull(form.high),
      deadband: numberOrNull(form.deadband) ?? 0, severity: form.severity.value,
    };
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      await P.api("PUT", "/api/thresholds", body);
      say(`Saved the ${body.measure} threshold of ${body.scope}.`);
      await Promise.all([loadThresholds(), loadChanges(1)]);
    } catch (err) {
      fail(`Not saved: ${err.message}`);
    } finally {
      submit.disabled = false;
    }
  });

  // -- audit ---------------------------------------------------------------------------------------------------
  function asObject(x) {
    if (x === null || x === undefined || typeof x !== "string") return x ?? null;
    try {
      return JSON.parse(x);
    } catch (_err) {
      return { text: x };
    }
  }
  function describe(measure, x) {
    const t = asObject(x);
    if (!t) return "—";
    if (t.text) return esc(t.text);
    return `${limitText(measure, t.low)} … ${limitText(measure, t.high)}, deadband ${limitText(measure, t.deadband)}, ${esc(t.severity || "")}`;
  }
  async function loadChanges(page) {
    const table = $("#threshold-changes");
    let data;
    try {
      data = await P.api("GET", `/api/thresholds/changes${P.query({ page, per_page: PER_PAGE })}`);
    } catch (err) {
      table.dataset.state = "error";
      fail(`Could not load the change log: ${err.message}`);
      return;
    }
    const items = data.items || [];
    $("#threshold-changes tbody").innerHTML = items.length ? items.map((c) =>
      `<tr><td data-label="When">${P.timeTag(c.changed_at)}</td><td data-label="By">${esc(c.changed_by)}</td>` +
      `<td data-label="Scope"><code>${esc(c.scope)}</code></td><td data-label="Measure">${esc(c.measure)}</td>` +
      `<td data-label="Action">${esc(c.action)}</td>` +
      `<td data-label="Before">${describe(c.measure, c.old)}</td><td data-label="After">${describe(c.measure, c.new)}</td></tr>`,
    ).join("") : '<tr class="empty"><td colspan="7">No change yet.</td></tr>';
    const pages = data.pages || 1;
    changesPager.show(data.page || page, pages);
    table.dataset.state = "ready";
  }

  loadThresholds();
  loadChanges(1);
})();
