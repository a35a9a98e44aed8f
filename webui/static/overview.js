"use strict";
// Overview: one card per unit with a cell per automate, and the meters table. Starts from the
// snapshot embedded in the page, then the "plant" watch's snapshot, then patches cells on `update`.
// Cell state (data-state and class state-*): offline (unit's last will) > alarm (an active alarm of
// that automate) > stale (no reading for stale_after report periods) > normal.
(() => {
  const P = window.Plant;
  const { $, esc } = P;
  // The cells' states (codes in data-state and classes state-*) and their display labels.
  const STATE_TEXT = { normal: _("normal"), alarm: _("alarm"), stale: _("stale"), offline: _("offline") };
  // Texts of the HTML built below (computed once: the extractor reads a _() call, not one nested in
  // an attribute of a template literal).
  const TEXT = {
    meter: _("Meter"), state: _("State"), updated: _("Updated"),
    powerW: _("Power (W)"), voltageV: _("Voltage (V)"), energyKwh: _("Energy (kWh)"),
  };
  const unitTitle = (u) => _("Unit {unit}", { unit: String(u) });

  const units = new Map(); // unit -> Map(automate -> {unit, automate, type, reading})
  const meters = new Map(); // meter id -> PowerSample dict | null
  const devices = {}; // "units/3" | "meters/<id>" -> {state, ts}
  const active = new Map(); // "source|measure" -> active alarm
  // The device registry as the page was rendered: names, disabled devices, removed (hidden) ones.
  const registry = JSON.parse($("#registry").textContent);
  const hidden = new Set(registry.hidden || []);
  const disabled = new Set(registry.disabled || []);
  const nameOf = (device) => (registry.names || {})[device] || "";
  // "Ligne 2 <small>unit 2</small>", or "Unit 2" when it has no name (HTML, escaped).
  function deviceTitle(device, plain, id) {
    const name = nameOf(device);
    const off = disabled.has(device) ? ` <small class="device-disabled">${esc(_("(disabled)"))}</small>` : "";
    return (name ? `${esc(name)} <small class="device-id">${esc(id)}</small>` : esc(plain)) + off;
  }

  const newer = (old, ts) => !old || !old.ts || old.ts <= ts; // ISO UTC strings of one format sort as text
  // A reading is newer by the unit's own count (seq), as the bridge decides: one stamped in the
  // future must not hide the next ones. A later time with a lower seq is a unit that restarted.
  const newerReading = (old, r) => !old || r.seq > old.seq || r.ts > old.ts;

  // -- model ---------------------------------------------------------------------------------------
  function automatesOf(unit) {
    if (!units.has(unit)) units.set(unit, new Map());
    return units.get(unit);
  }
  function applyReading(r) {
    if (hidden.has(`units/${r.unit}`)) return false;
    const autos = automatesOf(r.unit);
    const cur = autos.get(r.automate);
    if (cur && !newerReading(cur.reading, r)) return false;
    autos.set(r.automate, { unit: r.unit, automate: r.automate, type: r.type, reading: r });
    return true;
  }
  function applyPower(p) {
    if (hidden.has(`meters/${p.meter}`)) return false;
    if (!newer(meters.get(p.meter), p.ts)) return false;
    meters.set(p.meter, p);
    return true;
  }
  function applyStatus(s) {
    if (!newer(devices[s.device], s.ts)) return false;
    devices[s.device] = { state: s.state, ts: s.ts };
    return true;
  }
  function applyActiveAlarm(a) {
    const key = `${a.source}|${a.measure}`;
    const cur = active.get(key);
    if (a.state === "active") {
      if (!cur || cur.raised_at <= a.raised_at) active.set(key, a);
    } else if (cur && cur.raised_at <= a.raised_at) {
      active.delete(key);
    }
  }
  function applySnapshot(s) {
    if (!s) return;
    if (s.measures) P.config.measures = s.measures;
    if (s.periods) P.config.periods = s.periods;
    for (const u of s.units || []) {
      for (const a of u.automates) {
        if (a.reading) applyReading({ ...a.reading, type: a.reading.type || a.type });
        else if (!hidden.has(`units/${a.unit}`) && !automatesOf(a.unit).has(a.automate)) automatesOf(a.unit).set(a.automate, { ...a, reading: null });
      }
    }
    for (const m of s.meters || []) {
      if (m.power) applyPower(m.power);
      else if (!hidden.has(`meters/${m.meter}`) && !meters.has(m.meter)) meters.set(m.meter, null);
    }
    for (const [device, st] of Object.entries(s.devices || {})) applyStatus({ device, ...st });
    if (s.alarms) {
      active.clear();
      for (const a of s.alarms) applyActiveAlarm(a);
    }
  }

  // -- state ----------------------------------------------------------------------------------------
  function alarmsOf(source) {
    return [...active.values()].filter((a) => a.source === source);
  }
  function stateOf(source, device, ts, kind) {
    if (devices[device] && devices[device].state === "offline") return "offline";
    if (alarmsOf(source).length) return "alarm";
    if (!ts || Date.now() - Date.parse(ts) > P.staleAfterMs(kind)) return "stale";
    return "normal";
  }
  function setState(el, state, title) {
    if (el.dataset.state !== state) {
      el.classList.remove(...Object.keys(STATE_TEXT).map((s) => `state-${s}`));
      el.classList.add(`state-${state}`);
      el.dataset.state = state;
      const label = el.querySelector(".state-label");
      if (label) label.textContent = STATE_TEXT[state];
    }
    el.title = title;
  }

  // -- rendering --------------------------------------------------------------------------------------
  const cells = new Map(); // source key -> element
  let layout = ""; // the set of units/automates/meters the DOM was built for

  function layoutKey() {
    const u = [...units.entries()].map(([n, autos]) => `${n}:${[...autos.keys()].sort((a, b) => a - b)}`).sort();
    return `${u.join(";")}|${[...meters.keys()].sort().join(",")}`;
  }
  function build() {
    cells.clear();
    const unitIds = [...units.keys()].sort((a, b) => a - b);
    $("#units").innerHTML = unitIds.length ? unitIds.map((u) => {
      const autos = [...units.get(u).keys()].sort((a, b) => a - b);
      const title = deviceTitle(`units/${u}`, unitTitle(u), _("unit {unit}", { unit: String(u) }));
      return `<section class="unit card" id="unit-${u}" data-unit="${u}" aria-labelledby="unit-${u}-title">` +
        `<h2 id="unit-${u}-title"><a href="/units/${u}">${title}</a> <span class="badge" data-device="units/${u}"></span>` +
        `<span class="unit-alarms" data-unit-alarms="${u}" data-level="none" data-active="0" data-critical="0"></span></h2>` +
        `<div class="cells">${autos.map((a) => {
          const source = `units/${u}/automates/${a}`;
          return `<a class="cell" href="/${source}" data-source="${source}" data-unit="${u}" data-automate="${a}"></a>`;
        }).join("")}</div></section>`;
    }).join("") : `<p class="muted">${esc(_("No automate has reported yet."))}</p>`;
    $("#units").dataset.state = "ready";

    const ids = [...meters.keys()].sort();
    $("#meters").innerHTML = ids.length
      ? `<div class="scroll"><table id="meter-table" class="data cards-on-phone"><thead><tr><th scope="col">${esc(_("Meter"))}</th>` +
        `<th scope="col">${esc(_("State"))}</th><th scope="col">${esc(_("Power"))} <small>W</small></th>` +
        `<th scope="col">${esc(_("Voltage"))} <small>V</small></th>` +
        `<th scope="col">${esc(_("Energy"))} <small>kWh</small></th><th scope="col">${esc(_("Updated"))}</th></tr></thead><tbody>` +
        ids.map((id) => `<tr data-source="meters/${esc(id)}" data-meter="${esc(id)}"></tr>`).join("") +
        "</tbody></table></div>"
      : `<p class="muted">${esc(_("No meter has reported yet."))}</p>`;
    for (const el of document.querySelectorAll("[data-source]")) cells.set(el.dataset.source, el);
    layout = layoutKey();
  }

  function deviceBadge(device) {
    const d = devices[device];
    const state = d ? d.state : "unknown";
    return { state, label: P.deviceStateLabel(state),
      title: d ? _("{state} since {time}", { state: P.deviceStateLabel(state), time: P.formatTime(d.ts) }) : _("no status received yet") };
  }

  function renderCell(a) {
    const source = `units/${a.unit}/automates/${a.automate}`;
    const el = cells.get(source);
    if (!el) return;
    const r = a.reading;
    const alarmed = new Map(alarmsOf(source).map((al) => [al.measure, al]));
    const measures = P.config.measures.automate;
    const values = Object.entries(measures).map(([name, m]) => {
      const al = alarmed.get(name);
      const v = r ? r[name] : null;
      // m.key: what a phone shows of each cell (plus any measure in alarm); m.short: the cell's label,
      // the full one is in the title. Both come from the measure's definition (page config).
      const cls = ["value", m.key ? "key" : "", al ? "alarm" : ""].join(" ").trim();
      const mark = al ? `<span class="mark" aria-hidden="true">${al.bound === "low" ? "▼" : "▲"}</span>` : "";
      const measure = `${m.label}${m.unit ? ` (${m.unit})` : ""}`;
      const limit = al ? P.num(al.limit, m.decimals) : "";
      const title = !al ? measure : al.bound === "low" ? _("{measure} — alarm: below {limit}", { measure, limit })
        : _("{measure} — alarm: above {limit}", { measure, limit });
      return `<div class="${cls}" data-measure="${esc(name)}" data-value="${v ?? ""}" title="${esc(title)}">` +
        `<dt>${esc(m.short || m.label)}</dt><dd>${mark}${P.num(v, m.decimals)}</dd></div>`;
    }).join("");
    el.innerHTML = `<span class="cell-head"><span class="cell-name"><span class="visually-hidden">${esc(_("Automate"))} </span>A${a.automate}</span>` +
      `<span class="state-label"></span></span>` +
      `<dl class="values">${values}</dl>` +
      `<span class="cell-foot"><span class="type">${esc(a.type || "")}</span>` +
      `<span class="ts">${r ? P.timeTag(r.ts) : esc(_("no reading"))}</span></span>`;
    el.dataset.state = ""; // force setState to write the label into the fresh markup
    refreshCell(el, a);
  }

  function refreshCell(el, a) {
    const source = `units/${a.unit}/automates/${a.automate}`;
    const state = stateOf(source, `units/${a.unit}`, a.reading && a.reading.ts, "automate");
    const why = {
      offline: () => _("the unit is offline"),
      alarm: () => _("{measures} in alarm", { measures: alarmsOf(source).map((al) => P.measureInfo(al.measure).label).join(", ") }),
      stale: () => (a.reading ? _("no reading since {time}", { time: P.formatTime(a.reading.ts) }) : _("no reading yet")),
      normal: () => _("all values received"),
    }[state]();
    const unitName = nameOf(`units/${a.unit}`);
    const params = { name: unitName, unit: String(a.unit), automate: String(a.automate), state: STATE_TEXT[state], why };
    setState(el, state, unitName ? _("{name} (unit {unit}) automate {automate}: {state} — {why}", params)
      : _("Unit {unit} automate {automate}: {state} — {why}", params));
  }

  function renderMeter(id) {
    const el = cells.get(`meters/${id}`);
    if (!el) return;
    const p = meters.get(id);
    const badge = deviceBadge(`meters/${id}`);
    // The default limit (an override is shown on the meter's page); the alarm state is the cell's.
    const high = P.config.measures.meter.apower ? P.config.measures.meter.apower.high : null;
    const apowerOver = p && p.apower !== null && high !== null && p.apower > high;
    el.innerHTML = `<th scope="row" data-label="${esc(TEXT.meter)}"><a href="/meters/${encodeURIComponent(id)}">${deviceTitle(`meters/${id}`, id, id)}</a></th>` +
      `<td data-label="${esc(TEXT.state)}"><span class="badge" data-state="${esc(badge.state)}" title="${esc(badge.title)}">${esc(badge.label)}</span> ` +
      `<span class="state-label"></span></td>` +
      `<td data-label="${esc(TEXT.powerW)}" data-measure="apower" class="num${apowerOver ? " over" : ""}">${P.fmtMeasure("apower", p && p.apower)}</td>` +
      `<td data-label="${esc(TEXT.voltageV)}" data-measure="voltage" class="num">${P.fmtMeasure("voltage", p && p.voltage)}</td>` +
      `<td data-label="${esc(TEXT.energyKwh)}" data-measure="energy_wh" class="num">${P.kwh(p && (p.energy_total_wh ?? p.energy_wh))}</td>` +
      `<td data-label="${esc(TEXT.updated)}">${p ? P.timeTag(p.ts) : "—"}</td>`;
    el.dataset.state = "";
    refreshMeter(el, id);
  }

  function refreshMeter(el, id) {
    const p = meters.get(id);
    const state = stateOf(`meters/${id}`, `meters/${id}`, p && p.ts, "meter");
    const name = nameOf(`meters/${id}`);
    const meter = name ? `${name} (${id})` : id;
    setState(el, state, _("Meter {meter}: {state}", { meter, state: STATE_TEXT[state] }));
  }

  function renderUnitBadges() {
    for (const el of document.querySelectorAll(".unit [data-device]")) {
      const b = deviceBadge(el.dataset.device);
      el.dataset.state = b.state;
      el.textContent = b.label;
      el.title = b.title;
    }
  }

  // -- alarm counts: per unit card, and the summary at the top of the page -----------------------------------
  // Only active alarms count, acknowledged or not (from this page's `active`, seeded by the snapshot).
  function unitCounts() {
    const counts = new Map(); // unit -> {active, critical}
    for (const a of active.values()) {
      if (a.meter || a.unit === undefined) continue;
      const c = counts.get(a.unit) || { active: 0, critical: 0 };
      c.active += 1;
      c.critical += a.severity === "critical" ? 1 : 0;
      counts.set(a.unit, c);
    }
    return counts;
  }
  const levelOf = (c) => (!c || !c.active ? "none" : c.critical ? "critical" : "warning");
  const countText = (c) => `${c.critical ? "‼" : "⚠"} ${ngettext("{n} active ({critical} critical)",
    "{n} active ({critical} critical)", c.active, { critical: c.critical })}`;
  function renderAlarmCounts() {
    const counts = unitCounts();
    for (const el of document.querySelectorAll("[data-unit-alarms]")) {
      const c = counts.get(Number(el.dataset.unitAlarms));
      el.dataset.level = levelOf(c);
      el.dataset.active = String(c ? c.active : 0);
      el.dataset.critical = String(c ? c.critical : 0);
      el.textContent = c ? countText(c) : "";
      const card = el.closest(".unit");
      if (card) card.dataset.level = levelOf(c);
    }
    const box = $("#alarm-summary");
    const meterAlarms = [...active.values()].filter((a) => a.meter);
    const units = [...counts.entries()].sort((a, b) => b[1].critical - a[1].critical || a[0] - b[0]);
    const total = [...counts.values()].reduce((n, c) => n + c.active, 0) + meterAlarms.length;
    const critical = [...active.values()].filter((a) => a.severity === "critical").length;
    box.dataset.level = critical ? "critical" : total ? "warning" : "none";
    box.dataset.count = String(total);
    box.replaceChildren();
    const head = document.createElement("strong");
    head.textContent = total ? `${critical ? "‼" : "⚠"} ${_("Active alarms: {total} ({critical} critical) —", { total, critical })}`
      : `✓ ${_("No active alarm")}`;
    box.append(head);
    if (!total) return;
    const ul = document.createElement("ul");
    for (const [u, c] of units) {
      const li = document.createElement("li");
      li.dataset.unit = String(u);
      li.dataset.level = levelOf(c);
      const link = document.createElement("a");
      link.href = `#unit-${u}`;
      link.textContent = `${nameOf(`units/${u}`) || unitTitle(u)}: ${countText(c)}`;
      li.append(link);
      ul.append(li);
    }
    if (meterAlarms.length) {
      const li = document.createElement("li");
      li.dataset.level = meterAlarms.some((a) => a.severity === "critical") ? "critical" : "warning";
      const link = document.createElement("a");
      link.href = "#meters-title";
      link.textContent = ngettext("Meters: {n} active", "Meters: {n} active", meterAlarms.length);
      li.append(link);
      ul.append(li);
    }
    box.append(ul);
  }

  function renderAll() {
    if (layoutKey() !== layout) build();
    renderAlarmCounts();
    for (const autos of units.values()) for (const a of autos.values()) renderCell(a);
    for (const id of meters.keys()) renderMeter(id);
    renderUnitBadges();
  }

  // Staleness depends on the clock: re-evaluate the states every few seconds.
  function refreshStates() {
    for (const autos of units.values()) {
      for (const a of autos.values()) {
        const el = cells.get(`units/${a.unit}/automates/${a.automate}`);
        if (el) refreshCell(el, a);
      }
    }
    for (const id of meters.keys()) {
      const el = cells.get(`meters/${id}`);
      if (el) refreshMeter(el, id);
    }
  }

  // -- live --------------------------------------------------------------------------------------------
  function onUpdate(data) {
    const dirty = new Set(); // sources to re-render
    let structure = false;
    for (const r of data.readings || []) {
      const known = units.has(r.unit) && units.get(r.unit).has(r.automate);
      if (applyReading(r)) {
        dirty.add(`units/${r.unit}/automates/${r.automate}`);
        structure ||= !known;
      }
    }
    for (const p of data.power || []) {
      const known = meters.has(p.meter);
      if (applyPower(p)) {
        dirty.add(`meters/${p.meter}`);
        structure ||= !known;
      }
    }
    let badges = false;
    for (const s of data.status || []) {
      if (!applyStatus(s)) continue;
      badges = true;
      if (s.device.startsWith("meters/")) dirty.add(s.device);
      else for (const a of (units.get(Number(s.device.split("/")[1])) || new Map()).values()) dirty.add(`units/${a.unit}/automates/${a.automate}`);
    }
    if (structure) return renderAll();
    for (const source of dirty) renderSource(source);
    if (badges) renderUnitBadges();
  }

  function renderSource(source) {
    const parts = source.split("/");
    if (parts[0] === "meters") return renderMeter(parts.slice(1).join("/"));
    const a = units.get(Number(parts[1]))?.get(Number(parts[3]));
    if (a) renderCell(a);
  }

  function onAlarms(event, all) {
    if (event === null) {
      // hello: the server's open alarms; the active ones define the alarm state
      active.clear();
      for (const a of all.values()) if (a.state === "active") applyActiveAlarm(a);
      for (const autos of units.values()) for (const a of autos.values()) renderCell(a);
      for (const id of meters.keys()) renderMeter(id);
      renderAlarmCounts();
      return;
    }
    applyActiveAlarm(event);
    renderSource(event.source);
    renderAlarmCounts();
  }

  applySnapshot(JSON.parse($("#snapshot").textContent));
  renderAll();
  P.onUpdate(onUpdate);
  P.onAlarms(onAlarms);
  // /units/<u> shows one unit and watches only its room; / watches the whole plant.
  const unit = $("#units").dataset.unit;
  P.watch(unit ? { view: "unit", unit: Number(unit) } : { view: "plant" }, (snapshot) => {
    applySnapshot(snapshot);
    renderAll();
  });
  setInterval(refreshStates, 5000);
})();
