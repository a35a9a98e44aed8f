"use strict";
// Shared by every logged-in page (loaded after vendor/socket.io.min.js, before the page's script):
// the Socket.IO connection (the session cookie authenticates it), the connection badge (the socket and
// the web server's own MQTT/database health), the active-alarm counter, banner and tab title, the beep
// and notification on new critical alarms, value formatting, the one time formatter (formatTime, plant
// zone) and a JSON API helper that sends the CSRF header.
// -- language ---------------------------------------------------------------------------------------
// The page's catalog (page_config.i18n: plantmodel/translations/<lang>/LC_MESSAGES/js.po, compiled).
// Every text a person reads goes through _() or ngettext(), with {name} placeholders filled from
// params: `python -m webui translations update` extracts them, and tests/unit/test_translations.py
// fails on a text built without them. Global (classic scripts share them): each page's script uses them.
const PAGE_I18N = (() => {
  const el = document.getElementById("page-config");
  try {
    return (el && JSON.parse(el.textContent).i18n) || {};
  } catch (_err) {
    return {};
  }
})();
const INTL_LOCALE = PAGE_I18N.intl || "en-GB";
function i18nFill(text, params) {
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, key) => {
    if (!(key in params)) return whole;
    const v = params[key];
    // {n}, the count of ngettext(), is grouped ("1 500 points"); any other number is passed as
    // written (an id, a year): a value to format goes through Plant.num first.
    return key === "n" && typeof v === "number" ? new Intl.NumberFormat(INTL_LOCALE).format(v) : String(v ?? "");
  });
}
function _(msgid, params) {
  const text = (PAGE_I18N.messages || {})[msgid];
  return i18nFill(typeof text === "string" && text ? text : msgid, params);
}
// The same English text meaning two things ("active" token, "active" alarm): a context tells them apart.
function pgettext(context, msgid, params) {
  const text = (PAGE_I18N.messages || {})[`${context}\u0004${msgid}`];
  return i18nFill(typeof text === "string" && text ? text : msgid, params);
}
const PLURAL_RULES = new Intl.PluralRules(INTL_LOCALE);
function ngettext(singular, plural, n, params) {
  const forms = (PAGE_I18N.messages || {})[singular];
  // Intl names the CLDR category ("one", "many", "other"); page_config maps it to the catalog's form.
  const index = (PAGE_I18N.plural || {})[PLURAL_RULES.select(n)] ?? (n === 1 ? 0 : 1);
  const text = Array.isArray(forms) && forms[index] ? forms[index] : index === 0 ? singular : plural;
  return i18nFill(text, { n, ...(params || {}) });
}

window.Plant = (() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  const ROLES = ["viewer", "operator", "admin"];
  const role = document.body.dataset.role || "";
  const can = (needed) => role !== "" && ROLES.indexOf(role) >= ROLES.indexOf(needed);
  // Server-side defaults (periods, stale_after, measures); the live "hello" may refine them.
  const config = JSON.parse($("#page-config").textContent);
  const csrfToken = $('meta[name="csrf-token"]').content;

  // -- formatting --------------------------------------------------------------------------------
  function measureInfo(name) {
    const m = config.measures;
    return m.automate[name] || m.meter[name] || (m.alarm_only || {})[name] || { label: name, unit: "", decimals: 2, low: null, high: null };
  }
  // Numbers in the page's language: "4 012,5" in French (narrow no-break space, decimal comma).
  const numberFormats = new Map();
  function num(value, decimals = 2) {
    if (value === null || value === undefined || value === "" || Number.isNaN(Number(value))) return "—";
    if (!numberFormats.has(decimals)) {
      const options = { minimumFractionDigits: decimals, maximumFractionDigits: decimals };
      let format;
      try { // "negative": a value rounding to zero is "0,00", not "-0,00"
        format = new Intl.NumberFormat(INTL_LOCALE, { ...options, signDisplay: "negative" });
      } catch (_err) { // a browser without it
        format = new Intl.NumberFormat(INTL_LOCALE, options);
      }
      numberFormats.set(decimals, format);
    }
    return numberFormats.get(decimals).format(Number(value));
  }
  const fmtMeasure = (name, value) => num(value, measureInfo(name).decimals);
  const kwh = (wh) => (wh === null || wh === undefined ? "—" : num(Number(wh) / 1000, 3));
  // Display labels of the codes pages show (the codes stay in data attributes, classes and the API).
  const SEVERITY_LABELS = { critical: _("critical"), warning: _("warning") };
  const severityLabel = (code) => SEVERITY_LABELS[code] || String(code ?? "");
  const DEVICE_STATE_LABELS = { online: _("online"), offline: _("offline"), unknown: _("unknown") };
  const deviceStateLabel = (code) => DEVICE_STATE_LABELS[code || "unknown"] || String(code);
  // -- time: every page shows times in the plant's zone (page_config.plant_tz), with the zone --------
  // One formatter for all pages: formatTime(iso) -> "2 Dec 2026 09:15:03 CET". A bad zone name falls
  // back to the browser's zone rather than breaking every page.
  const plantZone = (() => {
    try {
      new Intl.DateTimeFormat("en-GB", { timeZone: config.plant_tz || undefined });
      return config.plant_tz || undefined;
    } catch (_err) {
      console.warn("unknown plant time zone:", config.plant_tz); // i18n-skip: the console
      return undefined;
    }
  })();
  // en-GB: 24-hour clock, and the usual abbreviations (CET, GMT, BST...) where they exist.
  const partsFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: plantZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23", timeZoneName: "short",
  });
  function plantParts(ms) {
    const out = {};
    for (const p of partsFormat.formatToParts(new Date(ms))) out[p.type] = p.value;
    return out;
  }
  function toMs(ts) {
    if (ts === null || ts === undefined || ts === "") return NaN;
    return typeof ts === "number" ? ts : ts instanceof Date ? ts.getTime() : Date.parse(ts);
  }
  // The date as the page's language writes it: "2 déc. 2026", "2 Dec 2026" (yearless: "2 déc.").
  const dateFormats = {
    year: new Intl.DateTimeFormat(INTL_LOCALE, { timeZone: plantZone, day: "numeric", month: "short", year: "numeric" }),
    short: new Intl.DateTimeFormat(INTL_LOCALE, { timeZone: plantZone, day: "numeric", month: "short" }),
  };
  // opts: date (true | false | "auto": only when not today in the plant), year (default true),
  // seconds (default true), zone (default true); always a 24-hour clock:
  // "2 déc. 2026 09:15:03 CET". Invalid input comes back as text, missing as "—".
  function formatTime(ts, opts = {}) {
    const ms = toMs(ts);
    if (ts === null || ts === undefined || ts === "") return "—";
    if (Number.isNaN(ms)) return String(ts);
    const { date = true, year = true, seconds = true, zone = true } = opts;
    const p = plantParts(ms);
    const day = `${p.year}-${p.month}-${p.day}`;
    const showDate = date === "auto" ? day !== plantDay(Date.now()) : date;
    const time = `${p.hour}:${p.minute}${seconds ? `:${p.second}` : ""}`;
    const dateText = showDate ? `${(year ? dateFormats.year : dateFormats.short).format(new Date(ms))} ` : "";
    return `${dateText}${time}${zone ? ` ${p.timeZoneName}` : ""}`;
  }
  function plantDay(ms) {
    const p = plantParts(ms);
    return `${p.year}-${p.month}-${p.day}`;
  }
  const zoneName = () => plantParts(Date.now()).timeZoneName;
  // The plant's offset from UTC at ms, in ms (wall clock read as UTC, minus the instant).
  function zoneOffset(ms) {
    const p = plantParts(ms);
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
  }
  const when = (ts) => formatTime(ts, { date: "auto" });
  const timeTag = (ts) => (ts ? `<time datetime="${esc(ts)}" title="${esc(formatTime(ts))}">${esc(when(ts))}</time>` : "—");
  // <input type="datetime-local"> holds a wall time: the plant's (labelled with zoneName()); the API
  // wants UTC ISO 8601.
  function localInputToIso(value) {
    const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || "");
    if (!m) return "";
    const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    let ms = wall - zoneOffset(wall);
    ms = wall - zoneOffset(ms); // once more: the guess may sit across a DST change
    return new Date(ms).toISOString();
  }
  function isoToLocalInput(ms) {
    const p = plantParts(toMs(ms));
    return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
  }
  function sourceUrl(a) {
    if (a.meter) return `/meters/${encodeURIComponent(a.meter)}`;
    return `/units/${a.unit}/automates/${a.automate}`;
  }

  // -- JSON API ---------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(message, status) {
      super(message);
      this.status = status;
    }
  }
  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
    let resp;
    try {
      resp = await fetch(url, {
        method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(_("network error: {error}", { error: err.message }), 0);
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_err) {
      data = null;
    }
    if (!resp.ok) {
      if (resp.status === 401) location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      throw new ApiError((data && data.error) || `${resp.status} ${resp.statusText}`, resp.status);
    }
    return data;
  }
  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : "";
  }
  function showMessage(el, text) {
    if (!el) return;
    el.textContent = text || "";
    el.hidden = !text;
  }
  // The Previous/Next pager under a paginated table (ids <prefix>-prev, -next, -page; the
  // templates' pager macro): the buttons call load(page); show() sets the page reached.
  function pager(prefix, load) {
    const state = {
      page: 1,
      show(page, pages, text) {
        state.page = page;
        $(`#${prefix}-page`).textContent = text || _("Page {page} of {pages}", { page, pages });
        $(`#${prefix}-prev`).disabled = page <= 1;
        $(`#${prefix}-next`).disabled = page >= pages;
      },
    };
    $(`#${prefix}-prev`).addEventListener("click", () => load(state.page - 1));
    $(`#${prefix}-next`).addEventListener("click", () => load(state.page + 1));
    return state;
  }
  // An admin list whose filters live in the page's URL (bookmarkable): ids <name> (the table),
  // <name>-filters (the form; inputs f-<key>, start/end in plant time), <name>-error and the pager's.
  // GET <path>?<filters>&page=&per_page=; fill(tbody, items) draws the rows; before(filters) runs first.
  // The texts (translated by the page): count(n) -> "12 messages" (ngettext), failed(error) -> "Could not
  // load the rejected messages: <error>". Older callers pass noun ("messages") and what ("the rejected
  // messages") instead, already translated.
  function urlList({ name, path, keys, noun, what, count, failed, fill, before = () => {}, perPage = 50 }) {
    const fail = (text) => showMessage($(`#${name}-error`), text);
    const countText = (n) => (count ? count(n) : `${num(n, 0)} ${noun || ""}`.trim());
    const failText = (error) => (failed ? failed(error) : _("Could not load {what}: {error}", { what, error }));
    // The URL holds UTC ISO times (what the API takes); the inputs show the plant's wall time.
    const url = new URL(window.location.href);
    const filters = () => {
      const out = {};
      for (const k of keys) if (url.searchParams.get(k)) out[k] = url.searchParams.get(k);
      return out;
    };
    const initial = filters();
    if (initial.start) $("#f-start").value = isoToLocalInput(initial.start);
    if (initial.end) $("#f-end").value = isoToLocalInput(initial.end);

    async function load(page) {
      const f = filters();
      before(f);
      const table = $(`#${name}`);
      try {
        const data = await api("GET", `${path}${query({ ...f, page, per_page: perPage })}`);
        fill($(`#${name} tbody`), data.items);
        list.show(data.page, data.pages, _("Page {page} of {pages} ({count})",
          { page: data.page, pages: data.pages, count: countText(data.total) }));
        table.dataset.state = "ready";
        table.dataset.count = String(data.items.length);
        fail("");
        if (page > 1) url.searchParams.set("page", String(page)); else url.searchParams.delete("page");
        window.history.replaceState(null, "", url);
      } catch (err) {
        table.dataset.state = "error";
        fail(failText(err.message));
      }
    }
    const list = pager(name, load);

    // The form rewrites the URL (a bookmarkable filter), then loads page 1.
    $(`#${name}-filters`).addEventListener("submit", (ev) => {
      ev.preventDefault();
      for (const k of keys) {
        const raw = $(`#f-${k}`).value;
        const v = k === "start" || k === "end" ? localInputToIso(raw) : raw.trim();
        if (v) url.searchParams.set(k, v); else url.searchParams.delete(k);
      }
      url.searchParams.delete("page");
      window.history.pushState(null, "", url);
      load(1);
    });
    window.addEventListener("popstate", () => window.location.reload());
    load(Number(url.searchParams.get("page")) || 1);
  }
  // A form's feedback pair: say() shows a confirmation, fail() an error; each hides the other.
  function feedback(messageEl, errorEl) {
    return {
      say(text) { showMessage(errorEl, ""); showMessage(messageEl, text); },
      fail(text) { showMessage(messageEl, ""); showMessage(errorEl, text); },
    };
  }

  // -- alarms: the open ones (active, or cleared but not acknowledged) ---------------------------------
  const alarms = new Map(); // "source|measure|raised_at" -> alarm_dict
  const alarmKey = (a) => `${a.source}|${a.measure}|${a.raised_at}`;
  const alarmListeners = []; // fn(event alarm | null, alarms Map): null after a full reset (hello)
  let helloSeen = false; // alarms known at load never beep; those raised later do
  function storeAlarm(a) {
    const key = alarmKey(a);
    const old = alarms.get(key);
    if (old && old.since && a.since && a.since < old.since) return; // an older state arriving late
    const merged = { ...old, ...a };
    // An event without ack fields (not looked up) must not undo a known acknowledgement.
    if (old && old.acknowledged_at && !a.acknowledged_at) {
      for (const f of ["acknowledged_at", "acknowledged_by", "ack_note", "ack_disposition"]) merged[f] = old[f];
    }
    if (merged.state === "cleared" && merged.acknowledged_at) alarms.delete(key);
    else alarms.set(key, merged);
  }
  const isNewCritical = (a) => helloSeen && a.state === "active" && a.severity === "critical" && !alarms.has(alarmKey(a));
  function setAlarms(list) {
    const fresh = (list || []).filter(isNewCritical); // raised while the live link was down
    alarms.clear();
    for (const a of list || []) storeAlarm(a);
    alarmsChanged(null);
    for (const a of fresh) alertNewCritical(a);
  }
  function applyAlarm(a) {
    const fresh = isNewCritical(a);
    storeAlarm(a);
    alarmsChanged(a);
    if (fresh) alertNewCritical(a);
  }
  function alarmsChanged(event) {
    renderAlarmState();
    for (const fn of alarmListeners) fn(event, alarms);
  }
  function unacknowledged() {
    return [...alarms.values()].filter((a) => !a.acknowledged_at);
  }
  // Active alarms, acknowledged or not, most severe then newest first.
  function activeAlarms() {
    const rank = (a) => (a.severity === "critical" ? 0 : 1);
    return [...alarms.values()].filter((a) => a.state === "active")
      .sort((a, b) => rank(a) - rank(b) || (a.raised_at < b.raised_at ? 1 : -1));
  }
  // What the header, banner and title show (the server's webui.snapshot.alarm_summary, for the browser).
  function alarmSummary() {
    const out = { active: 0, critical: 0, acknowledged: 0, units: {}, meters: {} };
    for (const a of activeAlarms()) {
      const critical = a.severity === "critical" ? 1 : 0;
      out.active += 1;
      out.critical += critical;
      out.acknowledged += a.acknowledged_at ? 1 : 0;
      const [group, key] = a.meter ? [out.meters, String(a.meter)] : [out.units, String(a.unit)];
      const c = (group[key] ||= { active: 0, critical: 0 });
      c.active += 1;
      c.critical += critical;
    }
    return out;
  }
  // "meter Cuve 2", "unit 3 automate 2", "Ligne 3 automate 2" (ids as text: no digit grouping).
  const alarmSource = (a) => (a.meter ? _("meter {name}", { name: a.name || a.meter })
    : a.name ? _("{name} automate {automate}", { name: a.name, automate: String(a.automate) })
      : _("unit {unit} automate {automate}", { unit: String(a.unit), automate: String(a.automate) }));
  // "Tank temperature below 2.50" / "… above 7.00" (the limit in the measure's decimals).
  function alarmWhat(a) {
    const params = { measure: measureInfo(a.measure).label, limit: num(a.limit, measureInfo(a.measure).decimals) };
    return a.bound === "low" ? _("{measure} below {limit}", params) : _("{measure} above {limit}", params);
  }
  const SEVERITY_ICON = { critical: "‼", warning: "⚠" };
  const baseTitle = document.title;
  function renderAlarmState() {
    const sum = alarmSummary();
    const level = sum.critical ? "critical" : sum.active ? "warning" : "none";
    const counter = $("#alarm-counter");
    if (counter) {
      counter.dataset.level = level;
      counter.dataset.active = String(sum.active);
      counter.dataset.critical = String(sum.critical);
      $(".icon", counter).textContent = level === "none" ? "✓" : SEVERITY_ICON[level];
      $(".text", counter).textContent = sum.active
        ? ngettext("{n} active ({critical} critical)", "{n} active ({critical} critical)", sum.active, { critical: sum.critical })
        : _("no active alarm");
    }
    // The tab title: visible from another tab or a task bar.
    document.title = sum.active ? `(${sum.active}${level === "critical" ? "‼" : "⚠"}) ${baseTitle}` : baseTitle;
    renderBanner(sum);
  }
  const BANNER_MAX = 4;
  function renderBanner(sum) {
    const el = $("#alarm-banner");
    if (!el) return;
    const open = unacknowledged().length;
    const list = activeAlarms();
    el.dataset.count = String(open);
    el.dataset.active = String(list.length);
    el.dataset.level = sum.critical ? "critical" : list.length ? "warning" : "none";
    el.hidden = open === 0 && list.length === 0;
    el.replaceChildren();
    if (el.hidden) return;
    const head = document.createElement("a");
    head.href = "/alarms";
    head.className = "banner-head";
    head.textContent = `${sum.critical ? "‼" : "⚠"} ${ngettext("{n} active alarm", "{n} active alarms", list.length)} — ` +
      (open ? ngettext("{n} unacknowledged alarm", "{n} unacknowledged alarms", open) : _("all acknowledged"));
    el.append(head);
    const ul = document.createElement("ul");
    for (const a of list.slice(0, BANNER_MAX)) {
      const li = document.createElement("li");
      li.className = `sev-${a.severity}`;
      li.dataset.severity = a.severity;
      li.dataset.acknowledged = a.acknowledged_at ? "true" : "false";
      const link = document.createElement("a");
      link.href = sourceUrl(a);
      link.textContent = `${SEVERITY_ICON[a.severity] || "•"} ${_("{severity} {source}: {what}", {
        severity: severityLabel(a.severity).toUpperCase(), source: alarmSource(a), what: alarmWhat(a) })}`;
      li.append(link);
      if (a.acknowledged_at) {
        const ack = document.createElement("small");
        ack.className = "acked";
        ack.textContent = ` ${_("(acknowledged by {user})", { user: a.acknowledged_by || "?" })}`;
        li.append(ack);
      }
      ul.append(li);
    }
    if (list.length > BANNER_MAX) {
      const li = document.createElement("li");
      li.textContent = ngettext("… and {n} more", "… and {n} more", list.length - BANNER_MAX);
      ul.append(li);
    }
    el.append(ul);
  }

  // -- new critical alarms: a beep (per-browser mute) and a browser notification (when allowed) --------
  const SOUND_KEY = "plant.sound"; // localStorage: "off" mutes this browser
  const alerts = []; // what was signalled (browser tests read it: headless Chromium has no speakers)
  let audio = null;
  const soundOn = () => {
    try {
      return localStorage.getItem(SOUND_KEY) !== "off";
    } catch (_err) {
      return true;
    }
  };
  function renderSoundToggle() {
    const b = $("#sound-toggle");
    if (!b) return;
    const on = soundOn();
    b.setAttribute("aria-pressed", on ? "true" : "false");
    b.dataset.sound = on ? "on" : "off";
    b.textContent = on ? `🔔 ${_("sound on")}` : `🔕 ${_("sound off")}`;
  }
  function audioContext() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    audio ||= new Ctx();
    return audio;
  }
  function beep() {
    const ctx = audioContext();
    if (!ctx) return false;
    if (ctx.state === "suspended") ctx.resume().catch(() => {});
    // Three short 880 Hz pulses: distinct from a notification chime.
    for (let i = 0; i < 3; i++) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.value = 0.08;
      osc.connect(gain).connect(ctx.destination);
      const t = ctx.currentTime + i * 0.3;
      osc.start(t);
      osc.stop(t + 0.18);
    }
    return true;
  }
  function renderNotifyButton() {
    const b = $("#notify-permission");
    if (!b) return;
    b.hidden = !window.Notification || Notification.permission !== "default";
  }
  function alertNewCritical(a) {
    const text = _("{source}: {what} ({value})", {
      source: alarmSource(a), what: alarmWhat(a), value: num(a.value, measureInfo(a.measure).decimals) });
    const entry = { key: alarmKey(a), sound: false, notified: false };
    if (soundOn()) {
      try {
        entry.sound = beep();
      } catch (err) {
        console.warn("beep:", err); // i18n-skip: the console
      }
    }
    if (window.Notification && Notification.permission === "granted") {
      try {
        const n = new Notification(_("Critical alarm — Au Bon Beurre"), { body: text, tag: entry.key });
        n.onclick = () => { window.focus(); location.assign("/alarms"); };
        entry.notified = true;
      } catch (err) {
        console.warn("notification:", err); // i18n-skip: the console
      }
    }
    alerts.push(entry);
  }

  // -- the web UI's own health (its MQTT client, its database) and the bridges' -----------------------------
  let health = { ok: true, mqtt: null, database: null, bridge: null, storing: null, problems: [] };
  let socketUp = false;
  // The server's problems (webui.live: English, one broadcast for every page) in the page's language,
  // from the links that are down; a problem this page does not know keeps the server's text.
  const LINK_PROBLEMS = {
    mqtt: _("MQTT broker unreachable"),
    database: _("database unavailable"),
    bridge: _("bridge offline: readings are not being stored, no alarm can be raised"),
    storing: _("bridge stuck: devices publish but no reading has been stored"),
  };
  function problems(links = Object.keys(LINK_PROBLEMS)) {
    const known = links.filter((link) => health[link] === false).map((link) => LINK_PROBLEMS[link]);
    return known.length || links.length < Object.keys(LINK_PROBLEMS).length ? known : health.problems || [];
  }
  function renderHealth() {
    const frozen = !socketUp || health.mqtt === false;
    document.body.dataset.live = frozen ? "frozen" : "live";
    const note = $("#frozen-note");
    if (note) {
      // Tiles stay live while no bridge stores (the device values are real), but nothing is
      // recorded and no alarm can be raised: say so above every page, not only in the badge.
      const unstored = health.bridge === false || health.storing === false;
      document.body.dataset.bridge = unstored ? "down" : "ok";
      const since = formatTime(health.since);
      const text = frozen && view
        ? !socketUp ? _("Values are frozen: the live connection to the web server is down. Tiles show the last values received.")
          : _("Values are frozen: the web server lost the MQTT broker (since {time}). Tiles show the last values received.", { time: since })
        : unstored ? _("Not storing: {problems} (since {time}). Tiles still show the devices' live values.",
          { problems: problems(["bridge", "storing"]).join(", "), time: since }) : "";
      showMessage(note, text);
    }
    if (!socketUp) return; // the socket handlers set the badge
    if (health.ok) badge("live", _("live"));
    else badge("down", problems().join(", "), _("The web server: {problems}", { problems: problems().join(", ") }));
  }
  function applyHealth(h) {
    const recovered = health.mqtt === false && h.mqtt === true;
    health = h || health;
    renderHealth();
    // Updates were lost while MQTT was down: re-read the view's snapshot.
    if (recovered) emitWatch();
  }

  // -- Socket.IO ----------------------------------------------------------------------------------------
  let socket = null;
  let view = null; // the watch payload of this page (re-sent on every reconnect)
  let onView = null;
  const updateListeners = [];
  const connectListeners = [];

  function badge(state, text, title) {
    const el = $("#connection");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = text;
    el.title = title || _("Live updates");
  }
  function emitWatch() {
    if (!socket || !socket.connected || !view) return;
    const sent = view;
    socket.emit("watch", sent, (ack) => {
      if (sent !== view) return; // the page changed its view meanwhile
      if (!ack || ack.error) {
        console.warn("watch refused:", ack && ack.error); // i18n-skip: the console
        badge("down", _("live error"), ack && ack.error);
        return;
      }
      if (onView) onView(ack.snapshot, ack.room);
    });
  }
  function watch(newView, onSnapshot) {
    const same = view && JSON.stringify(view) === JSON.stringify(newView);
    view = newView;
    onView = onSnapshot;
    if (!same) emitWatch();
  }
  function connect() {
    if (typeof io !== "function") {
      badge("down", _("no live updates"), _("socket.io client missing (run: {command})", { command: "python -m webui assets" })); // i18n-skip: the command
      return;
    }
    badge("connecting", _("connecting…"));
    // WebSocket only: one connection to one web UI process for its whole life, so nginx may spread
    // browsers over several processes (deploy/nginx/webui.conf.template); no long-polling fallback.
    socket = io({ transports: ["websocket"] });
    socket.on("connect", () => {
      socketUp = true;
      renderHealth();
      emitWatch();
      for (const fn of connectListeners) fn();
    });
    socket.on("disconnect", (reason) => {
      socketUp = false;
      badge("down", _("disconnected"), _("Disconnected: {reason}; reconnecting…", { reason }));
      renderHealth();
    });
    socket.on("connect_error", (err) => {
      // A refused connection (session expired) is not retried by the client: say so.
      if (!socket.active) badge("refused", _("not connected"), _("Refused: {error}. Reload the page or log in again.", { error: err.message }));
      else badge("down", _("reconnecting…"), err.message);
    });
    socket.on("hello", (hello) => {
      if (hello.periods) config.periods = hello.periods;
      if (hello.stale_after) config.stale_after = hello.stale_after;
      setAlarms(hello.alarms);
      helloSeen = true;
    });
    socket.on("alarm", applyAlarm);
    socket.on("health", applyHealth);
    socket.on("update", (data) => {
      for (const fn of updateListeners) fn(data || {});
    });
  }

  const api_ = {
    $, $$, esc, can, role, config, csrfToken,
    measureInfo, num, fmtMeasure, kwh, severityLabel, deviceStateLabel, formatTime, zoneName, zoneOffset, plantZone, when, timeTag,
    localInputToIso, isoToLocalInput, sourceUrl,
    ApiError, api, query, showMessage, feedback, pager, urlList,
    alarms, alarmKey, applyAlarm, setAlarms, unacknowledged, activeAlarms, alarmSummary, alerts,
    get health() {
      return health;
    },
    onAlarms: (fn) => alarmListeners.push(fn),
    onUpdate: (fn) => updateListeners.push(fn),
    onConnect: (fn) => connectListeners.push(fn),
    watch,
    get socket() {
      return socket; // for debugging and browser tests
    },
    staleAfterMs: (kind) => (config.stale_after || 3) * (config.periods[kind] || 60) * 1000,
  };
  // Close the meters menu when clicking elsewhere (a <details> does not do it by itself).
  document.addEventListener("click", (ev) => {
    const menu = $("#nav-meters");
    if (menu && menu.open && !menu.contains(ev.target)) menu.open = false;
  });
  // Header controls: the mute toggle (kept per browser) and the notification permission, asked for
  // only when the user clicks (browsers ignore or block requests made on load).
  const soundButton = $("#sound-toggle");
  if (soundButton) {
    soundButton.addEventListener("click", () => {
      try {
        localStorage.setItem(SOUND_KEY, soundOn() ? "off" : "on");
      } catch (err) {
        console.warn("cannot keep the sound setting:", err); // i18n-skip: the console
      }
      renderSoundToggle();
      if (soundOn()) audioContext(); // a click may unlock audio (autoplay policy)
    });
  }
  const notifyButton = $("#notify-permission");
  if (notifyButton) {
    notifyButton.addEventListener("click", async () => {
      try {
        await Notification.requestPermission();
      } finally {
        renderNotifyButton();
      }
    });
  }
  // Browsers start audio suspended until a user gesture: resume it on the first one, so the first
  // critical alarm can beep.
  document.addEventListener("pointerdown", () => {
    if (audio && audio.state === "suspended") audio.resume().catch(() => {});
    else if (!audio && soundOn()) audioContext();
  }, { once: true });
  for (const el of $$(".zone-label")) el.textContent = `(${zoneName()})`; // beside time inputs
  const zoneEl = $("#plant-zone");
  if (zoneEl) {
    zoneEl.textContent = _("times: {zone}", { zone: zoneName() });
    const zone = plantZone || _("this browser's zone");
    zoneEl.title = _("Times on these pages are in the plant's time zone ({zone})", { zone });
  }
  // The user's language (null: the browser's, else the plant's): stored with the user, then the page
  // is fetched again in it.
  const languageSelect = $("#language-select");
  if (languageSelect) {
    languageSelect.addEventListener("change", async () => {
      languageSelect.disabled = true;
      try {
        await api("PATCH", "/api/me", { language: languageSelect.value || null });
        location.reload();
      } catch (err) {
        languageSelect.disabled = false;
        languageSelect.value = languageSelect.dataset.current;
        window.alert(err.message);
      }
    });
  }
  renderSoundToggle();
  renderNotifyButton();
  renderAlarmState();
  connect();
  return api_;
})();
