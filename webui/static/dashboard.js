"use strict";
// Live dashboard: renders the snapshot embedded in the page, then applies the Socket.IO events
// (snapshot, reading, power, status, alarm) to the same model and re-renders.
(() => {
  const byId = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  let measures = { automate: {}, meter: {} };
  const units = new Map(); // unit -> Map(automate -> {unit, automate, type, reading})
  const meters = new Map(); // meter id -> PowerSample dict (or null before its first value)
  const devices = {}; // "units/3" | "meters/<id>" -> {state, ts}
  let alarms = new Map(); // "source|measure" -> active Alarm dict

  // A snapshot read from the database may be older than a live event already applied: keep
  // the newest (ISO 8601 UTC strings of one format compare as text).
  const newer = (old, ts) => !old || !old.ts || old.ts <= ts;

  function automates(unit) {
    if (!units.has(unit)) units.set(unit, new Map());
    return units.get(unit);
  }
  function applyReading(r) {
    const autos = automates(r.unit);
    const cur = autos.get(r.automate);
    if (cur && !newer(cur.reading, r.ts)) return;
    autos.set(r.automate, { unit: r.unit, automate: r.automate, type: r.type, reading: r });
  }
  function applyPower(p) {
    if (newer(meters.get(p.meter), p.ts)) meters.set(p.meter, p);
  }
  function applyStatus(s) {
    if (newer(devices[s.device], s.ts)) devices[s.device] = { state: s.state, ts: s.ts };
  }
  function applyAlarm(a) {
    const key = `${a.source}|${a.measure}`;
    const cur = alarms.get(key);
    if (a.state === "active") alarms.set(key, a);
    else if (cur && cur.raised_at <= a.raised_at) alarms.delete(key);
  }
  function applySnapshot(s) {
    measures = s.measures;
    for (const u of s.units) {
      for (const a of u.automates) {
        if (a.reading) applyReading(a.reading);
        else if (!automates(a.unit).has(a.automate)) automates(a.unit).set(a.automate, a);
      }
    }
    for (const m of s.meters) {
      if (m.power) applyPower(m.power);
      else if (!meters.has(m.meter)) meters.set(m.meter, null);
    }
    for (const [device, st] of Object.entries(s.devices)) applyStatus({ device, ...st });
    alarms = new Map(s.alarms.map((a) => [`${a.source}|${a.measure}`, a]));
  }

  // -- rendering ---------------------------------------------------------------------------
  const fmt = (m, v) => (v === null || v === undefined ? "—" : Number(v).toFixed(m.decimals));
  const isOut = (m, v) =>
    v !== null && v !== undefined && ((m.low !== null && v < m.low) || (m.high !== null && v > m.high));
  const withUnit = (m) => (m.unit ? `${m.label} (${m.unit})` : m.label);

  function when(ts) {
    if (!ts) return "—";
    const d = new Date(ts);
    return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
  }
  function badge(device) {
    const d = devices[device];
    if (!d) return '<span class="badge unknown">unknown</span>';
    return `<span class="badge ${esc(d.state)}" title="since ${esc(when(d.ts))}">${esc(d.state)}</span>`;
  }
  function head(first, table) {
    const cols = Object.values(table)
      .map((m) => `<th>${esc(m.label)}${m.unit ? `<br><small>${esc(m.unit)}</small>` : ""}</th>`)
      .join("");
    return `<thead><tr>${first.map((c) => `<th>${c}</th>`).join("")}${cols}<th>Time</th></tr></thead>`;
  }
  function cells(table, values) {
    return Object.entries(table)
      .map(([name, m]) => {
        const v = values ? values[name] : null;
        return `<td data-label="${esc(withUnit(m))}"${isOut(m, v) ? ' class="out"' : ""}>${fmt(m, v)}</td>`;
      })
      .join("");
  }
  const timeCell = (values) => `<td data-label="Time">${esc(when(values && values.ts))}</td>`;

  function renderAlarms() {
    const list = [...alarms.values()].sort((a, b) => a.raised_at.localeCompare(b.raised_at));
    byId("alarms").innerHTML = list.length
      ? list.map((a) => {
          const m = measures.automate[a.measure] || measures.meter[a.measure];
          const unit = m.unit ? ` ${m.unit}` : "";
          return `<li class="${esc(a.severity)}"><b>${esc(a.label)}</b> — ${esc(m.label)} ` +
            `${fmt(m, a.value)}${esc(unit)}, ${a.bound === "high" ? "above" : "below"} ` +
            `${fmt(m, a.limit)}${esc(unit)} <small>since ${esc(when(a.raised_at))}</small></li>`;
        }).join("")
      : '<li class="none">No active alarm.</li>';
  }
  function renderUnits() {
    const html = [...units.keys()].sort((a, b) => a - b).map((u) => {
      const rows = [...units.get(u).values()].sort((a, b) => a.automate - b.automate).map((a) =>
        `<tr><th>Automate ${a.automate} <small>${esc(a.type)}</small></th>` +
        `${cells(measures.automate, a.reading)}${timeCell(a.reading)}</tr>`).join("");
      return `<section><h2>Unit ${u} ${badge(`units/${u}`)}</h2><div class="scroll"><table>` +
        `${head(["Automate"], measures.automate)}<tbody>${rows}</tbody></table></div></section>`;
    }).join("");
    byId("units").innerHTML = html || '<p class="muted">No automate has reported yet.</p>';
  }
  function renderMeters() {
    const rows = [...meters.keys()].sort().map((id) => {
      const p = meters.get(id);
      const output = !p || p.output === null ? "—" : p.output ? "on" : "off";
      return `<tr><th>${esc(id)} ${badge(`meters/${id}`)}</th><td data-label="Output">${output}</td>` +
        `${cells(measures.meter, p)}${timeCell(p)}</tr>`;
    }).join("");
    byId("meters").innerHTML = rows
      ? `<div class="scroll"><table>${head(["Meter", "Output"], measures.meter)}<tbody>${rows}</tbody></table></div>`
      : '<p class="muted">No meter has reported yet.</p>';
  }

  // Coalesce bursts of events (50 automates report within a second) into one render per frame.
  let queued = false;
  function render() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      renderAlarms();
      renderUnits();
      renderMeters();
    });
  }

  // -- live ----------------------------------------------------------------------------------
  function connection(ok) {
    const el = byId("connection");
    el.textContent = ok ? "live" : "disconnected";
    el.className = `badge ${ok ? "live" : "down"}`;
  }
  const on = (apply) => (data) => { apply(data); render(); };

  applySnapshot(JSON.parse(byId("snapshot").textContent));
  render();
  const socket = io(); // same origin; the server emits "snapshot" on every (re)connect
  socket.on("connect", () => connection(true));
  socket.on("disconnect", () => connection(false));
  socket.on("snapshot", on(applySnapshot));
  socket.on("reading", on(applyReading));
  socket.on("power", on(applyPower));
  socket.on("status", on(applyStatus));
  socket.on("alarm", on(applyAlarm));
})();
