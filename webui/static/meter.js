"use strict";
// Meter view: watches the meter; the watch snapshot gives the latest sample, state, last 10 samples
// and limits. The power chart covers the last 60 minutes (/api/meters/<id>/series, then live samples).
// Power above the meter's apower high limit is highlighted (class "over", plus a text note).
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  const { TimeChart, HOUR } = window.PlantCharts;
  const { meter } = JSON.parse($("#meter-config").textContent);
  const device = `meters/${meter}`;
  const base = `/api/meters/${encodeURIComponent(meter)}`;
  const status = $("#series-status");

  let last10 = []; // PowerSample dicts, newest first
  let limits = {};
  let loaded = false;
  let pending = [];
  const apower = P.measureInfo("apower");
  const chart = new TimeChart($("#power-chart"), { label: apower.label, decimals: apower.decimals, unit: apower.unit });

  const highLimit = () => {
    const high = limits.apower ? limits.apower.high : undefined;
    return high === undefined ? apower.high ?? null : high;
  };
  // The relay's state (codes "on"/"off" in the API and the switch actions) as shown.
  const RELAY_STATE = { on: _("on"), off: _("off") };
  const OUTCOMES = { pending: _("pending"), confirmed: _("confirmed"), error: _("error"), timeout: _("timeout") };
  // Texts of the HTML built below (computed once: the extractor reads a _() call, not one nested in
  // an attribute of a template literal).
  const TEXT = {
    time: _("Time"), powerW: _("Power (W)"), voltageV: _("Voltage (V)"), currentA: _("Current (A)"),
    energyKwh: _("Energy (kWh)"), overLimit: _("over the limit"), requested: _("Requested"), by: _("By"),
    fromTo: _("From → to"), outcome: _("Outcome"), answered: _("Answered"), answer: _("Device's answer"),
  };
  const relayText = (on) => (on === null || on === undefined ? _("relay unknown") : on ? _("relay on") : _("relay off"));
  const isOver = (p) => p && p.apower !== null && p.apower !== undefined && highLimit() !== null && p.apower > highLimit();

  // -- rendering ------------------------------------------------------------------------------------------
  function renderLatest() {
    const p = last10[0] || null;
    const power = $("#power");
    power.textContent = P.fmtMeasure("apower", p && p.apower);
    power.dataset.value = p && p.apower !== null ? String(p.apower) : "";
    const over = isOver(p);
    $("#power-kpi").classList.toggle("over", over);
    power.classList.toggle("over", over);
    const high = highLimit();
    $("#power-limit").textContent = high === null ? _("no limit")
      : over ? _("⚠ above the {limit} W limit", { limit: P.num(high, 0) }) : _("limit {limit} W", { limit: P.num(high, 0) });
    const energy = $("#energy");
    // Counted across the device's counter resets (energy_wh + energy_offset_wh): never goes back.
    const total = p ? (p.energy_total_wh ?? p.energy_wh) : null;
    energy.textContent = P.kwh(total);
    energy.dataset.wh = total !== null && total !== undefined ? String(total) : "";
    $("#voltage").textContent = P.fmtMeasure("voltage", p && p.voltage);
    $("#current").textContent = P.fmtMeasure("current", p && p.current);
    const ts = $("#last-ts");
    ts.textContent = p ? P.formatTime(p.ts) : "—";
    ts.setAttribute("datetime", p ? p.ts : "");
    $("#output-state").textContent = !p || p.output === null || p.output === undefined ? "" : relayText(p.output);
  }

  function renderTable() {
    const body = $("#last10 tbody");
    body.innerHTML = last10.length ? last10.map((p) => {
      const over = isOver(p);
      return `<tr data-ts="${esc(p.ts)}"${over ? ' class="over"' : ""}>` +
        `<td data-label="${esc(TEXT.time)}">${P.timeTag(p.ts)}</td>` +
        `<td class="num${over ? " over" : ""}" data-measure="apower" data-label="${esc(TEXT.powerW)}">` +
        `${over ? `<span class="mark" aria-label="${esc(TEXT.overLimit)}">▲</span>` : ""}${P.fmtMeasure("apower", p.apower)}</td>` +
        `<td class="num" data-measure="voltage" data-label="${esc(TEXT.voltageV)}">${P.fmtMeasure("voltage", p.voltage)}</td>` +
        `<td class="num" data-measure="current" data-label="${esc(TEXT.currentA)}">${P.fmtMeasure("current", p.current)}</td>` +
        `<td class="num" data-measure="energy_wh" data-label="${esc(TEXT.energyKwh)}">${P.kwh(p.energy_wh)}</td></tr>`;
    }).join("") : `<tr class="empty"><td colspan="5">${esc(_("No measurement yet."))}</td></tr>`;
    $("#last10").dataset.rows = String(last10.length);
  }

  function showState(state, ts) {
    const el = $("#meter-state");
    el.dataset.state = state || "unknown";
    el.textContent = P.deviceStateLabel(state);
    el.title = ts ? _("{state} since {time}", { state: P.deviceStateLabel(state), time: P.formatTime(ts) }) : "";
  }

  function addSamples(samples) {
    const byTs = new Map(last10.map((p) => [p.ts, p]));
    for (const p of samples) byTs.set(p.ts, p);
    last10 = [...byTs.values()].sort((a, b) => (a.ts < b.ts ? 1 : -1)).slice(0, 10);
    renderLatest();
    renderTable();
  }

  // -- chart ------------------------------------------------------------------------------------------------
  function slide() {
    const end = Math.max(Date.now(), chart.lastX() || 0);
    chart.dropBefore(end - HOUR);
    chart.setRange(end - HOUR, end);
    chart.setLimits(limits.apower ? limits.apower.low ?? null : null, highLimit());
    chart.update();
  }

  async function loadSeries() {
    loaded = false;
    pending = [];
    const end = Date.now();
    const q = P.query({ start: new Date(end - HOUR).toISOString(), end: new Date(end).toISOString() });
    let data;
    try {
      data = await P.api("GET", `${base}/series${q}`);
    } catch (err) {
      status.classList.add("error");
      P.showMessage(status, _("Could not load the power series: {error}", { error: err.message }));
      return;
    }
    const s = (data.measures || {}).apower || { v: [] };
    chart.setSeries(data.t || [], s.v, data.aggregated ? s.min : null, data.aggregated ? s.max : null);
    if (data.limits) limits = { ...data.limits, ...limits };
    chart.setAlarms((data.alarms || []).filter((a) => a.measure === "apower")
      .map((a) => ({ x: Date.parse(a.raised_at), y: a.value, text: _("above {limit}", { limit: P.fmtMeasure("apower", a.limit) }) })));
    loaded = true;
    for (const p of pending) chart.append(Date.parse(p.ts), p.apower);
    pending = [];
    slide();
    status.classList.remove("error");
    P.showMessage(status, _("Live."));
  }

  // -- live -------------------------------------------------------------------------------------------------
  let connections = 0;
  P.onConnect(() => {
    if (connections++ > 0) loadSeries(); // reconnected: fill the gap
  });
  P.watch({ view: "meter", meter }, (snap) => {
    if (!snap) return;
    limits = snap.limits || {};
    showState(snap.state && typeof snap.state === "object" ? snap.state.state : snap.state,
      snap.state && typeof snap.state === "object" ? snap.state.ts : null);
    addSamples([...(snap.last10 || []), ...(snap.power ? [snap.power] : [])]);
    if (loaded) slide(); // the limits may have arrived after the series
  });
  P.onUpdate((data) => {
    const mine = (data.power || []).filter((p) => p.meter === meter);
    for (const s of data.status || []) if (s.device === device) showState(s.state, s.ts);
    if (!mine.length) return;
    addSamples(mine);
    if (!loaded) {
      pending.push(...mine);
      return;
    }
    mine.sort((a, b) => (a.ts < b.ts ? -1 : 1)).forEach((p) => chart.append(Date.parse(p.ts), p.apower));
    slide();
  });
  P.onAlarms((event) => {
    if (!event || event.source !== device || event.measure !== "apower") return;
    chart.addAlarm({ x: Date.parse(event.raised_at), y: event.value, text: _("above {limit}", { limit: P.fmtMeasure("apower", event.limit) }) });
    chart.update();
  });
  setInterval(() => {
    if (loaded) slide();
  }, 15000);

  // -- remote switching (operators and admins) -----------------------------------------------------------
  // The page shows what the device answered (or that it did not), never the request as if done.
  const switchStatus = $("#switch-status");
  const switchButtons = [$("#switch-on"), $("#switch-off")].filter(Boolean);
  function switchSaid(text, failed) {
    switchStatus.classList.toggle("error", Boolean(failed));
    P.showMessage(switchStatus, text);
  }
  async function switchTo(on) {
    switchButtons.forEach((b) => { b.disabled = true; });
    switchStatus.dataset.outcome = "pending";
    switchSaid(on ? _("Switching on: waiting for the meter's answer…") : _("Switching off: waiting for the meter's answer…"), false);
    try {
      const r = await P.api("POST", `${base}/switch`, { on });
      const time = r.answered_at ? P.formatTime(r.answered_at, { date: "auto" }) : "?";
      const was = r.was_on === null || r.was_on === undefined ? _("previous state unknown") : r.was_on ? _("was on") : _("was off");
      switchStatus.dataset.outcome = r.outcome;
      const said = r.on === null || r.on === undefined ? _("Switched unknown by the device at {time} ({was})", { time, was })
        : r.on ? _("Switched on by the device at {time} ({was})", { time, was }) : _("Switched off by the device at {time} ({was})", { time, was });
      switchSaid(said, false);
      $("#output-state").textContent = relayText(r.on);
    } catch (err) {
      // 504: "No answer from the meter within 5 s — its state is unknown"; 502: the device's error.
      switchStatus.dataset.outcome = { 502: "error", 503: "error", 504: "timeout" }[err.status] || "refused";
      switchSaid(err.message, true);
    } finally {
      switchButtons.forEach((b) => { b.disabled = false; });
      loadActions(1);
    }
  }
  switchButtons.forEach((b) => b.addEventListener("click", () => switchTo(b.dataset.on === "true")));

  const actionsBody = $("#switch-actions tbody");
  const actionsPager = P.pager("switch-actions", (pageNo) => loadActions(pageNo));
  function actionRow(a) {
    const from = a.remote_addr ? _("from {address}", { address: a.remote_addr }) : "";
    return `<tr data-id="${esc(a.id)}" data-outcome="${esc(a.outcome)}">` +
      `<td data-label="${esc(TEXT.requested)}">${P.timeTag(a.requested_at)}</td>` +
      `<td data-label="${esc(TEXT.by)}" title="${esc(from)}">${esc(a.requested_by)}</td>` +
      `<td data-label="${esc(TEXT.fromTo)}">${esc(RELAY_STATE[a.from_state] || a.from_state || "?")} → ${esc(RELAY_STATE[a.to_state] || a.to_state)}</td>` +
      `<td data-label="${esc(TEXT.outcome)}"><span class="outcome outcome-${esc(a.outcome)}">${esc(OUTCOMES[a.outcome] || a.outcome)}</span></td>` +
      `<td data-label="${esc(TEXT.answered)}">${P.timeTag(a.answered_at)}</td>` +
      // The device's own words (its error message): shown as it sent them.
      `<td data-label="${esc(TEXT.answer)}" class="detail">${esc(a.detail || "")}</td></tr>`;
  }
  async function loadActions(pageNo) {
    let data;
    try {
      data = await P.api("GET", `${base}/switch-actions${P.query({ page: pageNo, per_page: 10 })}`);
    } catch (err) {
      actionsBody.innerHTML = `<tr class="empty"><td colspan="6">${esc(_("Could not load the switch actions: {error}", { error: err.message }))}</td></tr>`;
      return;
    }
    const items = data.items || [];
    actionsBody.innerHTML = items.length ? items.map(actionRow).join("")
      : `<tr class="empty"><td colspan="6">${esc(_("No remote switching yet."))}</td></tr>`;
    $("#switch-actions").dataset.rows = String(items.length);
    actionsPager.show(data.page, data.pages);
  }
  loadActions(1);

  // Also from the REST API, so the page fills even before (or without) the live connection.
  P.api("GET", `${base}/readings${P.query({ order: "desc", per_page: 10 })}`)
    .then((page) => addSamples(page.items || [])).catch((err) => console.warn("last 10:", err.message)); // i18n-skip: the console
  P.api("GET", base).then((m) => {
    if (m && m.state && $("#meter-state").dataset.state === "unknown") showState(m.state, null);
  }).catch(() => {});
  renderLatest();
  loadSeries();
})();
