"use strict";
// Shared by every logged-in page (loaded after vendor/socket.io.min.js, before the page's script):
// the Socket.IO connection (the session cookie authenticates it), the connection badge, the
// unacknowledged-alarm banner, value/time formatting and a JSON API helper that sends the CSRF header.
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
    return m.automate[name] || m.meter[name] || { label: name, unit: "", decimals: 2, low: null, high: null };
  }
  function num(value, decimals = 2) {
    return value === null || value === undefined || Number.isNaN(Number(value)) ? "—" : Number(value).toFixed(decimals);
  }
  const fmtMeasure = (name, value) => num(value, measureInfo(name).decimals);
  const kwh = (wh) => (wh === null || wh === undefined ? "—" : (Number(wh) / 1000).toFixed(3));
  const sameDay = (a, b) => a.toDateString() === b.toDateString();
  function when(ts) {
    if (!ts) return "—";
    const d = new Date(ts);
    if (Number.isNaN(d.getTime())) return String(ts);
    return sameDay(d, new Date()) ? d.toLocaleTimeString() : d.toLocaleString();
  }
  const timeTag = (ts) => (ts ? `<time datetime="${esc(ts)}" title="${esc(new Date(ts).toLocaleString())}">${esc(when(ts))}</time>` : "—");
  // <input type="datetime-local"> works in local time; the API wants UTC ISO 8601.
  function localInputToIso(value) {
    if (!value) return "";
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? "" : d.toISOString();
  }
  function isoToLocalInput(ms) {
    const d = new Date(ms);
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
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
      throw new ApiError(`network error: ${err.message}`, 0);
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
        $(`#${prefix}-page`).textContent = text || `Page ${page} of ${pages}`;
        $(`#${prefix}-prev`).disabled = page <= 1;
        $(`#${prefix}-next`).disabled = page >= pages;
      },
    };
    $(`#${prefix}-prev`).addEventListener("click", () => load(state.page - 1));
    $(`#${prefix}-next`).addEventListener("click", () => load(state.page + 1));
    return state;
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
  function storeAlarm(a) {
    const key = alarmKey(a);
    const old = alarms.get(key);
    if (old && old.since && a.since && a.since < old.since) return; // an older state arriving late
    const merged = { ...old, ...a };
    // An event without ack fields (not looked up) must not undo a known acknowledgement.
    if (old && old.acknowledged_at && !a.acknowledged_at) {
      merged.acknowledged_at = old.acknowledged_at;
      merged.acknowledged_by = old.acknowledged_by;
    }
    if (merged.state === "cleared" && merged.acknowledged_at) alarms.delete(key);
    else alarms.set(key, merged);
  }
  function setAlarms(list) {
    alarms.clear();
    for (const a of list || []) storeAlarm(a);
    alarmsChanged(null);
  }
  function applyAlarm(a) {
    storeAlarm(a);
    alarmsChanged(a);
  }
  function alarmsChanged(event) {
    renderBanner();
    for (const fn of alarmListeners) fn(event, alarms);
  }
  function unacknowledged() {
    return [...alarms.values()].filter((a) => !a.acknowledged_at);
  }
  function renderBanner() {
    const el = $("#alarm-banner");
    if (!el) return;
    const n = unacknowledged().length;
    el.dataset.count = String(n);
    el.hidden = n === 0;
    el.innerHTML = n ? `<a href="/alarms"><span aria-hidden="true">⚠</span> ${n} unacknowledged alarm${n === 1 ? "" : "s"}</a>` : "";
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
    el.title = title || "Live updates";
  }
  function emitWatch() {
    if (!socket || !socket.connected || !view) return;
    const sent = view;
    socket.emit("watch", sent, (ack) => {
      if (sent !== view) return; // the page changed its view meanwhile
      if (!ack || ack.error) {
        console.warn("watch refused:", ack && ack.error);
        badge("down", "live error", ack && ack.error);
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
      badge("down", "no live updates", "socket.io client missing (run: python -m webui assets)");
      return;
    }
    badge("connecting", "connecting…");
    socket = io({ transports: ["websocket", "polling"] });
    socket.on("connect", () => {
      badge("live", "live");
      emitWatch();
      for (const fn of connectListeners) fn();
    });
    socket.on("disconnect", (reason) => badge("down", "disconnected", `Disconnected: ${reason}; reconnecting…`));
    socket.on("connect_error", (err) => {
      // A refused connection (session expired) is not retried by the client: say so.
      if (!socket.active) badge("refused", "not connected", `Refused: ${err.message}. Reload the page or log in again.`);
      else badge("down", "reconnecting…", err.message);
    });
    socket.on("hello", (hello) => {
      if (hello.periods) config.periods = hello.periods;
      if (hello.stale_after) config.stale_after = hello.stale_after;
      setAlarms(hello.alarms);
    });
    socket.on("alarm", applyAlarm);
    socket.on("update", (data) => {
      for (const fn of updateListeners) fn(data || {});
    });
  }

  const api_ = {
    $, $$, esc, can, role, config, csrfToken,
    measureInfo, num, fmtMeasure, kwh, when, timeTag, localInputToIso, isoToLocalInput, sourceUrl,
    ApiError, api, query, showMessage, feedback, pager,
    alarms, alarmKey, applyAlarm, setAlarms, unacknowledged,
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
  connect();
  return api_;
})();
