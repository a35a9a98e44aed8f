"use strict";
// Threshold editor (admin): the thresholds in force (GET /api/thresholds), set one (PUT), delete an
// override (DELETE; the "*" defaults can be changed but not deleted), and the audit log.
// A blank Low/High/Deadband/Severity inherits the wider scope (GET /api/thresholds/effective shows
// what and from where); "No limit" sends null; a 409 (a limit removed or widened past the normal
// range) opens an in-page confirmation, and "Yes" resends with confirm.
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
  // Column names, repeated on each cell for the phone layout (data-label).
  const L = {
    scope: _("Scope"), measure: _("Measure"), low: _("Low"), high: _("High"), deadband: _("Deadband"),
    severity: _("Severity"), updated: _("Updated"), by: _("By"), when: _("When"), action: _("Action"),
    before: _("Before"), after: _("After"),
  };
  const dl = (key) => `data-label="${esc(L[key])}"`;
  // The change log's actions (codes set | delete).
  const ACTION_TEXT = { set: _("set"), delete: _("delete") };

  // -- thresholds --------------------------------------------------------------------------------------------
  let rows = [];
  async function loadThresholds() {
    const table = $("#thresholds");
    try {
      const data = await P.api("GET", "/api/thresholds");
      rows = data.items || [];
    } catch (err) {
      table.dataset.state = "error";
      fail(_("Could not load the thresholds: {error}", { error: err.message }));
      return;
    }
    // Defaults first, then by scope and measure.
    const order = [...Object.keys(P.config.measures.automate), ...Object.keys(P.config.measures.meter)];
    rows.sort((a, b) => (a.scope === "*") !== (b.scope === "*") ? (a.scope === "*" ? -1 : 1)
      : a.scope.localeCompare(b.scope, undefined, { numeric: true }) || order.indexOf(a.measure) - order.indexOf(b.measure));
    $("#thresholds tbody").innerHTML = rows.length ? rows.map((t, i) =>
      `<tr data-scope="${esc(t.scope)}" data-measure="${esc(t.measure)}"${t.scope === "*" ? ' class="default"' : ""}>` +
      `<td ${dl("scope")}><code>${esc(t.scope)}</code></td>` +
      `<td ${dl("measure")}>${esc(P.measureInfo(t.measure).label)} <small>${esc(t.measure)}</small></td>` +
      `<td class="num" ${dl("low")}>${t.inherit_low ? esc(_("inherit")) : limitText(t.measure, t.low)}</td>` +
      `<td class="num" ${dl("high")}>${t.inherit_high ? esc(_("inherit")) : limitText(t.measure, t.high)}</td>` +
      `<td class="num" ${dl("deadband")}>${limitText(t.measure, t.deadband)}</td>` +
      `<td ${dl("severity")}><span class="sev sev-${esc(t.severity)}">${esc(P.severityLabel(t.severity))}</span></td>` +
      `<td ${dl("updated")}>${P.timeTag(t.updated_at)}</td><td ${dl("by")}>${esc(t.updated_by || "—")}</td>` +
      `<td class="actions"><button type="button" class="edit" data-index="${i}">${esc(_("Edit"))}</button>` +
      (t.scope === "*" ? "" : ` <button type="button" class="delete danger" data-index="${i}">${esc(_("Delete"))}</button>`) +
      "</td></tr>",
    ).join("") : `<tr class="empty"><td colspan="9">${esc(_("No threshold."))}</td></tr>`;
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
      for (const side of ["low", "high"]) {
        form[side].value = t[side] ?? "";
        // Stored null without inherit: an explicit "no limit".
        setNone(side, t[side] === null && !t[`inherit_${side}`]);
      }
      form.deadband.value = t.deadband ?? "";
      form.severity.value = t.severity;
      loadEffective();
      form.scrollIntoView({ behavior: "smooth", block: "start" });
      form.low.focus();
      return;
    }
    if (!window.confirm(_("Delete the {measure} threshold of {scope}? The wider scope's threshold will apply.",
      { measure: t.measure, scope: t.scope }))) return;
    button.disabled = true;
    const url = (confirm) => `/api/thresholds${P.query({ scope: t.scope, measure: t.measure, confirm: confirm ? "true" : "" })}`;
    try {
      const done = await withConfirmation((confirm) => write("DELETE", url(confirm)));
      if (done) {
        say(_("Deleted the {measure} threshold of {scope}; it now inherits the wider scope.", { measure: t.measure, scope: t.scope }));
        await Promise.all([loadThresholds(), loadChanges(1), loadEffective()]);
      } else {
        say(_("Not deleted."));
      }
    } catch (err) {
      fail(_("Could not delete: {error}", { error: err.message }));
    } finally {
      button.disabled = false;
    }
  });

  // -- writes that may need a confirmation ---------------------------------------------------------------------
  // P.api keeps only the message of an error; the 409 also lists what would be weakened (data.confirm).
  async function write(method, url, body) {
    const headers = { Accept: "application/json", "X-CSRF-Token": $('meta[name="csrf-token"]').content };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(url, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try {
      data = await resp.json();
    } catch (_err) {
      data = null;
    }
    if (resp.status === 409 && data && Array.isArray(data.confirm)) return { confirm: data.confirm };
    if (!resp.ok) throw new P.ApiError((data && data.error) || `${resp.status} ${resp.statusText}`, resp.status);
    return { data, status: resp.status };
  }
  const confirmBox = $("#threshold-confirm");
  // Shows what would be weakened and waits for Yes (true) or Cancel (false).
  function askConfirmation(items) {
    const list = $("#threshold-confirm-list");
    list.replaceChildren(...items.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    confirmBox.hidden = false;
    $("#threshold-confirm-no").focus();
    return new Promise((resolve) => {
      const done = (answer) => {
        confirmBox.hidden = true;
        $("#threshold-confirm-yes").onclick = null;
        $("#threshold-confirm-no").onclick = null;
        resolve(answer);
      };
      $("#threshold-confirm-yes").onclick = () => done(true);
      $("#threshold-confirm-no").onclick = () => done(false);
    });
  }
  // send(confirm) -> write(); null when the user cancelled.
  async function withConfirmation(send) {
    let result = await send(false);
    if (result.confirm) {
      if (!(await askConfirmation(result.confirm))) return null;
      result = await send(true);
    }
    return result;
  }

  // -- what a blank field inherits -----------------------------------------------------------------------------
  function setNone(side, on) {
    form[`${side}_none`].checked = on;
    form[side].disabled = on;
    if (on) form[side].value = "";
  }
  for (const side of ["low", "high"]) form[`${side}_none`].addEventListener("change", () => setNone(side, form[`${side}_none`].checked));

  const origin = (f) => (f.from ? _("from {scope}", { scope: f.from }) : _("built-in default"));
  let effectiveSeq = 0;
  async function loadEffective() {
    const seq = ++effectiveSeq;
    const scope = form.scope.value.trim();
    const measure = form.measure.value;
    const hints = { low: $("#t-low-hint"), high: $("#t-high-hint"), deadband: $("#t-deadband-hint"), severity: $("#t-severity-hint") };
    const summary = $("#t-effective");
    let item = null;
    if (scope) {
      try {
        const data = await P.api("GET", `/api/thresholds/effective${P.query({ scope, measure })}`);
        item = (data.items || [])[0] || null;
      } catch (_err) {
        item = null; // a scope still being typed: no hint rather than an error
      }
    }
    if (seq !== effectiveSeq) return; // a newer scope/measure was chosen meanwhile
    form.dataset.effective = item ? "ready" : "none";
    if (!item) {
      for (const el of Object.values(hints)) el.textContent = "";
      for (const side of ["low", "high"]) form[side].placeholder = _("inherit");
      form.deadband.placeholder = _("inherit");
      form.severity.options[0].textContent = _("inherit");
      summary.textContent = "";
      return;
    }
    const inh = item.inherited;
    const blank = (value, f) => _("blank: {value} ({origin})", { value, origin: origin(f) });
    const limitHint = (f) => (f.value === null ? (f.from ? _("blank: no limit ({origin})", { origin: origin(f) }) : _("blank: no limit"))
      : blank(limitText(measure, f.value), f));
    for (const side of ["low", "high"]) {
      form[side].placeholder = inh[side].value === null ? _("no limit")
        : _("inherit {value}", { value: limitText(measure, inh[side].value) });
      hints[side].textContent = limitHint(inh[side]);
    }
    form.deadband.placeholder = _("inherit {value}", { value: limitText(measure, inh.deadband.value) });
    hints.deadband.textContent = blank(limitText(measure, inh.deadband.value), inh.deadband);
    form.severity.options[0].textContent = _("inherit ({severity})", { severity: P.severityLabel(inh.severity.value) });
    hints.severity.textContent = blank(P.severityLabel(inh.severity.value), inh.severity);
    const eff = item.effective;
    const limitOrNone = (f) => (f.value === null ? _("none") : limitText(measure, f.value));
    summary.textContent = _("Applies now at {scope}: low {low} ({low_from}), high {high} ({high_from}), deadband {deadband} ({deadband_from}), {severity} ({severity_from}).", {
      scope, low: limitOrNone(eff.low), low_from: origin(eff.low), high: limitOrNone(eff.high), high_from: origin(eff.high),
      deadband: limitOrNone(eff.deadband), deadband_from: origin(eff.deadband),
      severity: P.severityLabel(eff.severity.value), severity_from: origin(eff.severity) });
  }
  let typing = null;
  form.scope.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(loadEffective, 250); });
  form.scope.addEventListener("change", loadEffective);
  form.measure.addEventListener("change", loadEffective);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    // A blank field is left out of the body: the server then inherits it (never "no limit", never 0).
    const body = { scope: form.scope.value.trim(), measure: form.measure.value };
    for (const side of ["low", "high"]) {
      if (form[`${side}_none`].checked) body[side] = null;
      else if (form[side].value.trim() !== "") body[side] = Number(form[side].value);
    }
    if (form.deadband.value.trim() !== "") body.deadband = Number(form.deadband.value);
    if (form.severity.value) body.severity = form.severity.value;
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const result = await withConfirmation((confirm) => write("PUT", "/api/thresholds", confirm ? { ...body, confirm } : body));
      if (!result) {
        say(_("Not saved."));
        return;
      }
      const t = result.data;
      const value = (name) => (t[name] === null ? _("none") : limitText(t.measure, t[name]));
      const low = t.inherit_low ? _("low inherited") : _("low {value}", { value: value("low") });
      const high = t.inherit_high ? _("high inherited") : _("high {value}", { value: value("high") });
      say(_("Saved {measure} at {scope}: {low}, {high}, deadband {deadband}, {severity}.", {
        measure: t.measure, scope: t.scope, low, high, deadband: limitText(t.measure, t.deadband),
        severity: P.severityLabel(t.severity) }));
      await Promise.all([loadThresholds(), loadChanges(1), loadEffective()]);
    } catch (err) {
      fail(_("Not saved: {error}", { error: err.message }));
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
    const lim = (side) => (t[`inherit_${side}`] ? _("inherit") : limitText(measure, t[side]));
    return esc(_("{low} … {high}, deadband {deadband}, {severity}", {
      low: lim("low"), high: lim("high"), deadband: limitText(measure, t.deadband), severity: t.severity ? P.severityLabel(t.severity) : "" }));
  }
  async function loadChanges(page) {
    const table = $("#threshold-changes");
    let data;
    try {
      data = await P.api("GET", `/api/thresholds/changes${P.query({ page, per_page: PER_PAGE })}`);
    } catch (err) {
      table.dataset.state = "error";
      fail(_("Could not load the change log: {error}", { error: err.message }));
      return;
    }
    const items = data.items || [];
    $("#threshold-changes tbody").innerHTML = items.length ? items.map((c) =>
      `<tr data-action="${esc(c.action)}"><td ${dl("when")}>${P.timeTag(c.changed_at)}</td><td ${dl("by")}>${esc(c.changed_by)}</td>` +
      `<td ${dl("scope")}><code>${esc(c.scope)}</code></td><td ${dl("measure")}>${esc(c.measure)}</td>` +
      `<td ${dl("action")}>${esc(ACTION_TEXT[c.action] || c.action)}</td>` +
      `<td ${dl("before")}>${describe(c.measure, c.old)}</td><td ${dl("after")}>${describe(c.measure, c.new)}</td></tr>`,
    ).join("") : `<tr class="empty"><td colspan="7">${esc(_("No change yet."))}</td></tr>`;
    const pages = data.pages || 1;
    changesPager.show(data.page || page, pages);
    table.dataset.state = "ready";
  }

  loadThresholds();
  loadChanges(1);
  loadEffective();
})();
