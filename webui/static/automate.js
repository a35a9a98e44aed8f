"use strict";
// Automate view: one chart per measure over a window (1 h, 24 h, 7 d or custom) loaded from
// /api/units/<u>/automates/<a>/series. In the 1 h window the page watches the automate and appends
// each live reading, dropping points older than 60 minutes (a sliding window).
(() => {
  const P = window.Plant;
  const { $, $$ } = P;
  const { TimeChart, HOUR, DAY } = window.PlantCharts;
  const cfg = JSON.parse($("#automate-config").textContent);
  const source = `units/${cfg.unit}/automates/${cfg.automate}`;
  const base = `/api/${source}`;
  const WINDOWS = { "1h": HOUR, "24h": 24 * HOUR, "7d": 7 * DAY };
  const chartsEl = $("#charts");
  const status = $("#series-status");

  // -- selectors: navigate, keeping the window ------------------------------------------------------
  function go(unit, automate) {
    location.assign(`/units/${unit}/automates/${automate}${location.search}`);
  }
  $("#unit-select").addEventListener("change", (ev) => {
    const unit = ev.target.value;
    const autos = cfg.units[unit] || [];
    go(unit, autos.includes(cfg.automate) ? cfg.automate : autos[0]);
  });
  $("#automate-select").addEventListener("change", (ev) => go(cfg.unit, ev.target.value));

  // -- charts -----------------------------------------------------------------------------------------
  const charts = {}; // measure -> TimeChart
  for (const canvas of $$("canvas[data-measure]", chartsEl)) {
    const m = P.measureInfo(canvas.dataset.measure);
    charts[canvas.dataset.measure] = new TimeChart(canvas, { label: m.label, decimals: m.decimals, unit: m.unit });
  }

  // -- window ------------------------------------------------------------------------------------------
  const params = new URLSearchParams(location.search);
  let win = params.get("window") in WINDOWS || params.get("window") === "custom" ? params.get("window") : "1h";
  let custom = { start: params.get("start") || "", end: params.get("end") || "" }; // ISO UTC
  let range = { start: 0, end: 0 };
  let loadSeq = 0;
  let loaded = false;
  let pending = []; // live readings that arrived while the series was loading

  function currentRange() {
    if (win === "custom") return { start: Date.parse(custom.start), end: Date.parse(custom.end) };
    const end = Date.now();
    return { start: end - WINDOWS[win], end };
  }

  function syncControls() {
    for (const b of $$("#window-buttons button")) b.setAttribute("aria-pressed", String(b.dataset.window === win));
    $("#custom-window").hidden = win !== "custom";
    chartsEl.dataset.window = win;
    const q = new URLSearchParams({ window: win });
    if (win === "custom") {
      q.set("start", custom.start);
      q.set("end", custom.end);
    }
    history.replaceState(null, "", `${location.pathname}?${q}`);
  }

  for (const b of $$("#window-buttons button")) {
    b.addEventListener("click", () => {
      if (b.dataset.window === "custom") {
        if (!custom.start || !custom.end) {
          const end = Date.now();
          custom = { start: new Date(end - 24 * HOUR).toISOString(), end: new Date(end).toISOString() };
        }
        $("#custom-start").value = P.isoToLocalInput(Date.parse(custom.start));
        $("#custom-end").value = P.isoToLocalInput(Date.parse(custom.end));
        win = "custom";
        syncControls();
        $("#custom-start").focus();
        return; // the user picks the dates, then "Show"
      }
      win = b.dataset.window;
      syncControls();
      load();
    });
  }
  $("#custom-window").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const start = P.localInputToIso($("#custom-start").value);
    const end = P.localInputToIso($("#custom-end").value);
    if (!start || !end || start >= end) {
      P.showMessage(status, _("Pick a start before the end."));
      status.classList.add("error");
      return;
    }
    custom = { start, end };
    syncControls();
    load();
  });

  // -- loading -------------------------------------------------------------------------------------------
  async function load() {
    const seq = ++loadSeq;
    loaded = false;
    pending = [];
    range = currentRange();
    const live = win === "1h";
    chartsEl.dataset.state = "loading";
    chartsEl.dataset.live = String(live);
    status.classList.remove("error");
    P.showMessage(status, _("Loading…"));
    // Watch before fetching, so no reading falls between the two.
    P.watch(live ? { view: "automate", unit: cfg.unit, automate: cfg.automate } : { view: "none" }, onSnapshot);
    const q = P.query({ start: new Date(range.start).toISOString(), end: new Date(range.end).toISOString() });
    $("#csv-link").href = `${base}/readings.csv${q}`;
    let data;
    try {
      data = await P.api("GET", `${base}/series${q}`);
    } catch (err) {
      if (seq !== loadSeq) return;
      chartsEl.dataset.state = "error";
      status.classList.add("error");
      P.showMessage(status, _("Could not load the series: {error}", { error: err.message }));
      return;
    }
    if (seq !== loadSeq) return; // a newer window was chosen meanwhile
    draw(data);
    loaded = true;
    for (const r of pending) appendReading(r);
    pending = [];
    if (live) slide();
    chartsEl.dataset.state = "ready";
  }

  function draw(data) {
    if (win !== "1h") range = { start: Date.parse(data.start) || range.start, end: Date.parse(data.end) || range.end };
    const limits = data.limits || {};
    const alarms = data.alarms || [];
    for (const [name, chart] of Object.entries(charts)) {
      const s = (data.measures || {})[name] || { v: [] };
      chart.setSeries(data.t || [], s.v, data.aggregated ? s.min : null, data.aggregated ? s.max : null);
      const lim = limits[name] || {};
      chart.setLimits(lim.low ?? null, lim.high ?? null);
      chart.setRange(range.start, range.end);
      chart.setAlarms(alarms.filter((a) => a.measure === name).map(alarmMark));
      chart.update();
      showLimits(name, lim);
      showLatest(name, chart);
    }
    const n = (data.t || []).length;
    const minutes = Math.round(data.bucket_ms / 60000);
    const params = { start: P.formatTime(range.start), end: P.formatTime(range.end), minutes: minutes ? P.num(minutes, 0) : "<1" };
    const live = win === "1h";
    // One whole sentence per case (aggregated or not, live or not), for the translators.
    let text;
    if (data.aggregated && live) {
      text = ngettext("{n} point from {start} to {end}, averaged over {minutes} min buckets (light band: min–max) — live.",
        "{n} points from {start} to {end}, averaged over {minutes} min buckets (light band: min–max) — live.", n, params);
    } else if (data.aggregated) {
      text = ngettext("{n} point from {start} to {end}, averaged over {minutes} min buckets (light band: min–max).",
        "{n} points from {start} to {end}, averaged over {minutes} min buckets (light band: min–max).", n, params);
    } else if (live) {
      text = ngettext("{n} point from {start} to {end} — live.", "{n} points from {start} to {end} — live.", n, params);
    } else {
      text = ngettext("{n} point from {start} to {end}.", "{n} points from {start} to {end}.", n, params);
    }
    P.showMessage(status, text);
  }

  function alarmMark(a) {
    const params = { limit: P.fmtMeasure(a.measure, a.limit), severity: P.severityLabel(a.severity) };
    const text = a.bound === "low" ? _("below {limit} ({severity})", params) : _("above {limit} ({severity})", params);
    return { x: Date.parse(a.raised_at), y: a.value, text };
  }
  function showLimits(name, lim) {
    const el = $(`[data-limits="${name}"]`);
    if (!el) return;
    const m = P.measureInfo(name);
    const low = lim.low ?? null, high = lim.high ?? null;
    el.textContent = low === null && high === null ? _("no limit")
      : _("limits {low} … {high}", { low: P.num(low, m.decimals), high: P.num(high, m.decimals) }); // num(null): "—"
  }
  function showLatest(name, chart) {
    const el = $(`[data-latest="${name}"]`);
    const data = chart.values;
    if (el) el.textContent = data.length ? P.fmtMeasure(name, data[data.length - 1].y) : "";
  }

  // -- live -------------------------------------------------------------------------------------------------
  function onSnapshot(snapshot) {
    const dev = snapshot && snapshot.devices ? snapshot.devices[`units/${cfg.unit}`] : null;
    if (dev) showUnitState(dev.state, dev.ts);
  }
  // After a reconnect the page may have missed readings: reload the live window.
  let connections = 0;
  P.onConnect(() => {
    if (connections++ > 0 && win === "1h" && loaded) load();
  });
  function showUnitState(state, ts) {
    const el = $("#unit-state");
    el.dataset.state = state;
    el.textContent = P.deviceStateLabel(state);
    el.title = ts ? _("Unit {unit} {state} since {time}", { unit: String(cfg.unit), state: P.deviceStateLabel(state), time: P.formatTime(ts) }) : "";
  }

  function appendReading(r) {
    const x = Date.parse(r.ts);
    for (const [name, chart] of Object.entries(charts)) chart.append(x, r[name]);
  }

  // Move the window to [now - 60 min, now] and drop what fell out of it.
  function slide() {
    let end = Date.now();
    for (const chart of Object.values(charts)) end = Math.max(end, chart.lastX() || 0);
    range = { start: end - HOUR, end };
    for (const [name, chart] of Object.entries(charts)) {
      chart.dropBefore(range.start);
      chart.setRange(range.start, range.end);
      chart.update();
      showLatest(name, chart);
    }
  }

  P.onUpdate((data) => {
    if (win !== "1h") return;
    const mine = (data.readings || []).filter((r) => r.unit === cfg.unit && r.automate === cfg.automate);
    for (const s of data.status || []) if (s.device === `units/${cfg.unit}`) showUnitState(s.state, s.ts);
    if (!mine.length) return;
    if (!loaded) {
      pending.push(...mine);
      return;
    }
    mine.sort((a, b) => (a.ts < b.ts ? -1 : 1)).forEach(appendReading);
    slide();
  });
  P.onAlarms((event) => {
    if (!event || event.source !== source || win !== "1h" || !loaded) return;
    const chart = charts[event.measure];
    if (!chart) return;
    chart.addAlarm(alarmMark(event));
    chart.update();
  });
  setInterval(() => {
    if (win === "1h" && loaded) slide();
  }, 15000);

  // The newest stored reading's three times: measured (unit clock), received and stored (bridge).
  function delay(from, to) {
    return to ? `+${P.num((Date.parse(to) - Date.parse(from)) / 1000, 3)} s` : "—";
  }
  function showLatestTimes() {
    P.api("GET", `${base}/readings?order=desc&per_page=1`).then((page) => {
      const r = page && page.items && page.items[0];
      $("#latest-times").textContent = r
        ? _("Latest: measured {measured}, received {received}, stored {stored}",
          { measured: P.formatTime(r.ts), received: delay(r.ts, r.received_at), stored: delay(r.ts, r.stored_at) })
        : "";
    }).catch(() => {});
  }
  showLatestTimes();
  setInterval(showLatestTimes, 15000);

  // The unit's connection state for windows that do not watch (the watch snapshot gives it otherwise).
  P.api("GET", `/api/units/${cfg.unit}`).then((u) => {
    if (u && u.state && $("#unit-state").dataset.state === "unknown") showUnitState(u.state, null);
  }).catch(() => {});

  syncControls();
  if (win === "custom") {
    $("#custom-start").value = custom.start ? P.isoToLocalInput(Date.parse(custom.start)) : "";
    $("#custom-end").value = custom.end ? P.isoToLocalInput(Date.parse(custom.end)) : "";
    if (!custom.start || !custom.end || Number.isNaN(Date.parse(custom.start)) || Number.isNaN(Date.parse(custom.end))) {
      win = "1h";
      syncControls();
    }
  }
  load();
})();
