// linktrack report page. A shell: it holds no data. It asks for a `read`
// API key (kept in this tab's sessionStorage, or taken once from the URL
// fragment `#key=...`, which browsers never send to a server), fetches the
// mailing's stats and series from this server's API, and draws them with
// DOM and SVG APIs only (text is always set as text, never parsed as HTML).
// No request leaves this origin; the page's Content-Security-Policy says so.
"use strict";

const KEY = "linktrack.readKey";
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function mailingId() {
  const part = location.pathname.split("/").filter(Boolean).pop() || "";
  return decodeURIComponent(part);
}

function takeKeyFromFragment() {
  const m = /^#key=(.+)$/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function status(text) {
  $("status").textContent = text;
}

async function api(path, key) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + key }, cache: "no-store" });
  if (r.ok) return r.json();
  let message = r.statusText;
  try { message = (await r.json()).message || message; } catch (_) { /* not JSON */ }
  const e = new Error(message);
  e.status = r.status;
  throw e;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function el(name, attrs, parent) {
  const n = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  parent.appendChild(n);
  return n;
}

// Stacked bars: human below, bot and suspect above, one bar per bucket.
function chart(target, buckets, pick, bucket) {
  target.replaceChildren();
  const W = 960, H = 220, L = 44, B = 28, T = 8;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" }, target);
  el("title", {}, svg).textContent = "human and automated hits per " + bucket;
  const rows = buckets.map((b) => ({ start: b.start, human: pick(b).human, auto: pick(b).bot + pick(b).suspect }));
  const max = Math.max(1, ...rows.map((r) => r.human + r.auto));
  const step = (W - L) / Math.max(1, rows.length);
  const y = (v) => H - B - (v / max) * (H - B - T);
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    el("line", { x1: L, x2: W, y1: y(v), y2: y(v) }, svg);
    el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, svg).textContent = String(v);
  }
  const every = Math.max(1, Math.ceil(rows.length / 8));
  rows.forEach((r, i) => {
    const x = L + i * step + step * 0.1, w = Math.max(1, step * 0.8);
    if (r.human) el("rect", { x, width: w, y: y(r.human), height: H - B - y(r.human), class: "human" }, svg);
    if (r.auto) el("rect", { x, width: w, y: y(r.human + r.auto), height: y(r.human) - y(r.human + r.auto), class: "auto" }, svg);
    if (i % every === 0) {
      const label = bucket === "day" ? r.start.slice(5, 10) : r.start.slice(5, 10) + " " + r.start.slice(11, 16);
      el("text", { x: x + w / 2, y: H - 8, "text-anchor": "middle" }, svg).textContent = label;
    }
  });
  if (!rows.length) el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, svg).textContent = "no hits yet";
}

function render(stats, series) {
  $("as-of").textContent = stats.as_of;
  $("tz-name").textContent = series.tz === "+00:00" ? "UTC" : "UTC" + series.tz;
  $("t-recipients").textContent = stats.recipients_human;
  $("t-human").textContent = stats.clicks.human;
  $("t-auto").textContent = stats.clicks.bot + stats.clicks.suspect;
  $("t-opens").textContent = stats.opens.unique_human;
  $("t-ctor").textContent = stats.opens.unique_human
    ? (100 * stats.recipients_human / stats.opens.unique_human).toFixed(1) + " %"
    : "–";
  const links = $("links");
  links.replaceChildren();
  for (const l of stats.links) {
    const tr = document.createElement("tr");
    cell(tr, l.position === null ? "–" : l.position, "num");
    cell(tr, l.url, "url");
    cell(tr, l.clicks.human, "num");
    cell(tr, l.clicks.bot, "num");
    cell(tr, l.clicks.suspect, "num");
    cell(tr, l.clicks.unique_human, "num");
    links.appendChild(tr);
  }
  const o = stats.opens, opens = $("opens"), tr = document.createElement("tr");
  for (const v of [o.total, o.human, o.bot, o.suspect, o.unique_human]) cell(tr, v, "num");
  opens.replaceChildren(tr);
  chart($("clicks-chart"), series.buckets, (b) => b.clicks, series.bucket);
  chart($("opens-chart"), series.buckets, (b) => b.opens, series.bucket);
  $("report").hidden = false;
}

async function load(key) {
  const id = mailingId();
  const base = "/v1/mailings/" + encodeURIComponent(id);
  status("Loading…");
  try {
    const stats = await api(base + "/stats", key);
    let series = await api(base + "/series?bucket=hour", key);
    if (series.buckets.length > 24 * 14) series = await api(base + "/series?bucket=day", key);
    render(stats, series);
    status("");
  } catch (e) {
    if (e.status === 401) {
      sessionStorage.removeItem(KEY);
      askForKey();
    }
    status(e.status === 404 ? "No mailing " + JSON.stringify(id) + " for this key's tenant." : "Could not load the report: " + e.message);
  }
}

function askForKey() {
  const form = $("key-form");
  form.hidden = false;
  form.onsubmit = (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    form.hidden = true;
    load(sessionStorage.getItem(KEY));
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("mailing").textContent = mailingId();
  takeKeyFromFragment();
  const key = sessionStorage.getItem(KEY);
  if (key) load(key); else askForKey();
});
