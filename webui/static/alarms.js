"use strict";
// Alarms: the open alarms (server-rendered, then kept current by the live hello/alarm events) with an
// Acknowledge button for operators and admins, and the filtered, paginated history (GET /api/alarms).
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const cfg = JSON.parse($("#alarms-config").textContent);
  const canAck = P.can("operator"); // the server checks too
  const PER_PAGE = 25;
  const DISPOSITION_TEXT = { hold: _("product on hold"), release: _("product released"), none: _("no product action") };
  // The choices of the acknowledgement form (the codes stay the radios' values).
  const DISPOSITION_CHOICE = { hold: _("hold"), release: _("release"), none: _("none") };
  const STATE_TEXT = { active: _("active"), cleared: _("cleared") };
  const stateText = (s) => STATE_TEXT[s] || String(s ?? "");
  // Column names, repeated on each cell for the phone layout (data-label).
  const L = {
    source: _("Source"), measure: _("Measure"), value: _("Value"), limit: _("Limit"), severity: _("Severity"),
    since: _("Since"), state: _("State"), acknowledged: _("Acknowledged"), raised: _("Raised"), cleared: _("Cleared"),
  };
  const dl = (key) => `data-label="${esc(L[key])}"`;

  function label(a) {
    // Built here, in the page's language (the alarm's own "label" is the server's English).
    return a.meter ? _("meter {name}", { name: a.meter })
      : _("unit {unit} automate {automate}", { unit: String(a.unit), automate: String(a.automate) });
  }
  // The name of the alarm's unit or meter (the device registry); the page's names when the alarm came
  // without one (a live alarm whose row was not found).
  function nameOf(a) {
    if (a.name) return a.name;
    const device = a.meter ? `meters/${a.meter}` : `units/${a.unit}`;
    return (cfg.names || {})[device] || "";
  }
  const automateText = (a) => _("automate {automate}", { automate: String(a.automate) });
  function named(a) { // text
    const name = nameOf(a);
    if (!name) return label(a);
    return a.meter ? `${name} (${label(a)})` : `${name} · ${automateText(a)} (${label(a)})`;
  }
  function sourceText(a) { // HTML
    const name = nameOf(a);
    if (!name) return esc(label(a));
    return `${esc(name)}${a.meter ? "" : ` · ${esc(automateText(a))}`} <small class="device-id">${esc(label(a))}</small>`;
  }
  const sourceCell = (a) => `<a href="${esc(P.sourceUrl(a))}">${sourceText(a)}</a>`;
  const measureLabel = (a) => esc(P.measureInfo(a.measure).label);
  const value = (a) => `${P.fmtMeasure(a.measure, a.value)}${a.unit_of_measure ? ` ${esc(a.unit_of_measure)}` : ""}`;
  const limit = (a) => esc(a.bound === "low" ? _("below {limit}", { limit: P.fmtMeasure(a.measure, a.limit) })
    : _("above {limit}", { limit: P.fmtMeasure(a.measure, a.limit) }));
  const severity = (a) => `<span class="sev sev-${esc(a.severity)}">${esc(P.severityLabel(a.severity))}</span>`;
  const stateCell = (a) => `<span class="alarm-state ${esc(a.state)}">${esc(stateText(a.state))}</span>` +
    (a.cleared_at ? ` <small>${P.timeTag(a.cleared_at)}</small>` : "");
  // Who and when, then the product's disposition and the corrective action (note), when given.
  const acked = (a) => `${esc(a.acknowledged_by || "")} <small>${P.timeTag(a.acknowledged_at)}</small>` +
    (a.ack_disposition ? ` <span class="disposition disposition-${esc(a.ack_disposition)}" data-disposition="${esc(a.ack_disposition)}">` +
      `${esc(DISPOSITION_TEXT[a.ack_disposition] || a.ack_disposition)}</span>` : "") +
    (a.ack_note ? `<span class="ack-note" data-note>${esc(a.ack_note)}</span>` : "");

  // -- open alarms ------------------------------------------------------------------------------------------
  function ackCell(a) {
    if (a.acknowledged_at) return acked(a);
    if (canAck && a.id !== undefined && a.id !== null) {
      return `<button type="button" class="ack" data-alarm-id="${esc(a.id)}">${esc(_("Acknowledge"))}</button>`;
    }
    return `<span class="muted">${esc(_("not yet"))}</span>`;
  }
  function renderOpen() {
    // A live event re-renders the table: keep the form being filled in (and what was typed).
    const form = $("#open-alarms form.ack-form");
    const list = [...P.alarms.values()].sort((a, b) => (a.raised_at < b.raised_at ? 1 : -1)); // newest first
    $("#open-alarms tbody").innerHTML = list.length ? list.map((a) =>
      `<tr data-alarm-id="${esc(a.id ?? "")}" data-state="${esc(a.state)}" data-acknowledged="${a.acknowledged_at ? "true" : "false"}" class="sev-${esc(a.severity)} ${esc(a.state)}">` +
      `<td ${dl("source")}>${sourceCell(a)}</td><td ${dl("measure")}>${measureLabel(a)}</td>` +
      `<td class="num" ${dl("value")}>${value(a)}</td><td class="num" ${dl("limit")}>${limit(a)}</td>` +
      `<td ${dl("severity")}>${severity(a)}</td><td ${dl("since")}>${P.timeTag(a.raised_at)}</td>` +
      `<td ${dl("state")}>${stateCell(a)}</td><td class="ack-cell" ${dl("acknowledged")}>${ackCell(a)}</td></tr>`,
    ).join("") : `<tr class="empty"><td colspan="8">${esc(_("No open alarm."))}</td></tr>`;
    $("#open-alarms").dataset.count = String(list.length);
    if (form) {
      const cell = $(`#open-alarms tr[data-alarm-id="${CSS.escape(form.dataset.alarmId)}"][data-acknowledged="false"] td.ack-cell`);
      if (cell) cell.replaceChildren(form);
    }
  }

  // Acknowledging opens a small form in the row: the corrective action (note) and what happens to the
  // product (disposition). Both are required for a critical alarm (the server refuses too), optional
  // for a warning.
  function ackForm(a) {
    const critical = a.severity === "critical";
    const id = esc(a.id);
    const form = document.createElement("form");
    form.className = "ack-form";
    form.noValidate = true; // our own message, the same in every browser
    form.dataset.alarmId = String(a.id);
    form.dataset.severity = a.severity;
    form.innerHTML =
      `<label for="ack-note-${id}">${esc(critical ? _("Corrective action (required)") : _("Corrective action (optional)"))}</label>` +
      `<textarea id="ack-note-${id}" name="note" maxlength="2000" rows="2"></textarea>` +
      `<fieldset><legend>${esc(critical ? _("Product disposition (required)") : _("Product disposition"))}</legend>` +
      ["hold", "release", "none"].map((d) => `<label><input type="radio" name="disposition" value="${d}"> ${esc(DISPOSITION_CHOICE[d])}</label>`).join("") +
      "</fieldset>" +
      `<button type="submit" class="primary">${esc(_("Confirm acknowledgement"))}</button> ` +
      `<button type="button" class="cancel">${esc(_("Cancel"))}</button>` +
      '<p class="error ack-error" role="alert" hidden></p>';
    return form;
  }

  $("#open-alarms").addEventListener("click", (ev) => {
    const cancel = ev.target.closest("form.ack-form button.cancel"); // i18n-skip: a selector
    if (cancel) {
      cancel.closest("form").remove();
      renderOpen();
      return;
    }
    const button = ev.target.closest("button.ack");
    if (!button) return;
    const alarm = [...P.alarms.values()].find((a) => String(a.id) === button.dataset.alarmId);
    if (!alarm) return;
    const old = $("#open-alarms form.ack-form");
    if (old) old.remove(); // one form at a time
    renderOpen();
    const cell = $(`#open-alarms tr[data-alarm-id="${CSS.escape(button.dataset.alarmId)}"] td.ack-cell`);
    const form = ackForm(alarm);
    cell.replaceChildren(form);
    $("textarea", form).focus();
  });

  $("#open-alarms").addEventListener("submit", async (ev) => {
    const form = ev.target.closest("form.ack-form");
    if (!form) return;
    ev.preventDefault();
    const note = form.elements.note.value.trim();
    const checked = form.querySelector('input[name="disposition"]:checked');
    const disposition = checked ? checked.value : "";
    const error = $(".ack-error", form);
    if (form.dataset.severity === "critical" && (!note || !disposition)) {
      P.showMessage(error, !note && !disposition ? _("A critical alarm needs the corrective action taken and the product's disposition.")
        : !note ? _("A critical alarm needs the corrective action taken (note).")
          : _("A critical alarm needs the product's disposition (hold, release or none)."));
      (note ? form.querySelector('input[name="disposition"]') : form.elements.note).focus();
      return;
    }
    const body = {};
    if (note) body.note = note;
    if (disposition) body.disposition = disposition;
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    submit.textContent = _("Acknowledging…");
    const msg = $("#ack-message");
    try {
      const alarm = await P.api("POST", `/api/alarms/${encodeURIComponent(form.dataset.alarmId)}/ack`, body);
      form.remove();
      P.applyAlarm(alarm);
      msg.classList.remove("error");
      P.showMessage(msg, _("Acknowledged: {source} {measure}.", { source: named(alarm), measure: P.measureInfo(alarm.measure).label }));
      loadHistory(historyPager.page);
    } catch (err) {
      if (err.status === 409 || err.status === 404) {
        form.remove();
        msg.classList.add("error");
        P.showMessage(msg, _("Could not acknowledge: {error}", { error: err.message }));
        refreshOpen();
      } else {
        P.showMessage(error, _("Could not acknowledge: {error}", { error: err.message }));
        submit.disabled = false;
        submit.textContent = _("Confirm acknowledgement");
      }
    }
  });

  // Re-read the open alarms from the API (after a conflict, or when no live connection exists).
  async function refreshOpen() {
    try {
      const items = [];
      for (let page = 1; ; page++) {
        const data = await P.api("GET", `/api/alarms${P.query({ state: "open", page, per_page: 1000 })}`);
        items.push(...data.items);
        if (page >= (data.pages || 1)) break;
      }
      P.setAlarms(items);
    } catch (err) {
      console.warn("open alarms:", err.message); // i18n-skip: the console
    }
  }

  // -- history ------------------------------------------------------------------------------------------------
  const form = $("#history-filters");
  const unitSelect = $("#f-unit");
  const automateSelect = $("#f-automate");
  const historyPager = P.pager("history", loadHistory);
  let historyFilters = {};

  function fillAutomates() {
    const autos = cfg.units[unitSelect.value] || [];
    automateSelect.innerHTML = `<option value="">${esc(_("any"))}</option>` +
      autos.map((a) => `<option value="${esc(a)}">${esc(a)}</option>`).join("");
    automateSelect.disabled = !unitSelect.value; // an automate needs its unit
  }
  unitSelect.addEventListener("change", fillAutomates);

  function filtersFromForm() {
    const f = new FormData(form);
    return {
      state: f.get("state"), unit: f.get("unit"), automate: automateSelect.disabled ? "" : f.get("automate"),
      meter: f.get("meter"), measure: f.get("measure"),
      start: P.localInputToIso(f.get("start")), end: P.localInputToIso(f.get("end")),
    };
  }

  // The filters (and page) live in the query string, so a filtered view can be bookmarked and reloaded.
  const URL_KEYS = ["state", "unit", "automate", "meter", "measure", "start", "end"];
  function filtersFromUrl() {
    const q = new URLSearchParams(location.search);
    const setSelect = (el, v) => {
      if (v !== null && [...el.options].some((o) => o.value === v)) el.value = v;
    };
    setSelect($("#f-state"), q.get("state"));
    setSelect(unitSelect, q.get("unit"));
    fillAutomates();
    setSelect(automateSelect, q.get("automate"));
    setSelect($("#f-meter"), q.get("meter"));
    setSelect($("#f-measure"), q.get("measure"));
    for (const key of ["start", "end"]) {
      const ms = Date.parse(q.get(key) || "");
      $(`#f-${key}`).value = Number.isNaN(ms) ? "" : P.isoToLocalInput(ms);
    }
    const page = Number(q.get("page"));
    return Number.isInteger(page) && page > 1 ? page : 1;
  }
  function filtersToUrl(page) {
    const q = new URLSearchParams(location.search);
    for (const key of [...URL_KEYS, "page"]) q.delete(key);
    for (const key of URL_KEYS) {
      const v = historyFilters[key];
      if (v && !(key === "state" && v === "all")) q.set(key, v);
    }
    if (page > 1) q.set("page", String(page));
    const search = q.toString();
    history.replaceState(history.state, "", `${location.pathname}${search ? `?${search}` : ""}${location.hash}`);
  }

  async function loadHistory(page) {
    const table = $("#history");
    const err = $("#history-error");
    table.dataset.state = "loading";
    let data;
    try {
      data = await P.api("GET", `/api/alarms${P.query({ ...historyFilters, page, per_page: PER_PAGE })}`);
    } catch (e) {
      table.dataset.state = "error";
      P.showMessage(err, e.message);
      return;
    }
    P.showMessage(err, "");
    const items = data.items || [];
    $("#history tbody").innerHTML = items.length ? items.map((a) =>
      `<tr data-alarm-id="${esc(a.id)}" data-state="${esc(a.state)}" class="sev-${esc(a.severity)}">` +
      `<td ${dl("raised")}>${P.timeTag(a.raised_at)}</td><td ${dl("source")}>${sourceCell(a)}</td>` +
      `<td ${dl("measure")}>${measureLabel(a)}</td><td class="num" ${dl("value")}>${value(a)}</td>` +
      `<td class="num" ${dl("limit")}>${limit(a)}</td><td ${dl("severity")}>${severity(a)}</td>` +
      `<td ${dl("state")}><span class="alarm-state ${esc(a.state)}">${esc(stateText(a.state))}</span></td>` +
      `<td ${dl("cleared")}>${a.cleared_at ? P.timeTag(a.cleared_at) : "—"}</td>` +
      `<td ${dl("acknowledged")}>${a.acknowledged_at ? acked(a) : "—"}</td></tr>`,
    ).join("") : `<tr class="empty"><td colspan="9">${esc(_("No alarm matches."))}</td></tr>`;
    const pages = data.pages || 1;
    const shown = data.page || page;
    filtersToUrl(shown);
    historyPager.show(shown, pages, ngettext("Page {page} of {pages} ({n} alarm)", "Page {page} of {pages} ({n} alarms)",
      data.total ?? items.length, { page: shown, pages }));
    table.dataset.state = "ready";
    table.dataset.total = String(data.total ?? items.length);
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    historyFilters = filtersFromForm();
    loadHistory(1);
  });
  form.addEventListener("reset", () => {
    setTimeout(() => { // after the browser reset the fields
      fillAutomates();
      historyFilters = {};
      loadHistory(1);
    });
  });

  // -- start ----------------------------------------------------------------------------------------------------
  // The server rendered the open alarms; seed the shared store with them until the live hello arrives.
  if (P.alarms.size === 0) P.setAlarms(cfg.open);
  P.onAlarms(renderOpen);
  renderOpen();
  const firstPage = filtersFromUrl();
  historyFilters = filtersFromForm();
  loadHistory(firstPage);
})();
