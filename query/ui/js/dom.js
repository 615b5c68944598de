// Building elements. Log text is only ever set with textContent (never as
// HTML), and characters that would change how text looks or reads
// (controls, ANSI escapes, bidirectional overrides) are shown escaped.

// C0 and C1 controls, DEL, bidirectional overrides and isolates, zero-width
// and line/paragraph separators, the byte-order mark.
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

// `s` with every hidden character written as \xNN or \uNNNN. Tabs and
// newlines are kept unless `oneLine`.
export function visible(s, oneLine = false) {
  let text = String(s ?? "").replace(HIDDEN, escapeChar);
  if (oneLine) text = text.replace(/[\t\n]/g, (c) => (c === "\t" ? "\\t" : "\\n"));
  return text;
}

function escapeChar(c) {
  const code = c.charCodeAt(0);
  return code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0") : "\\u" + code.toString(16).padStart(4, "0");
}

// An element: h("div", {class: "x", onclick: f}, "text", child, …). Strings
// become text nodes; attributes are set one by one (never markup).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "href") el.setAttribute("href", safeHref(v));
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Log text as a text node, hidden characters escaped and marked.
export function text(s, oneLine = false) {
  const raw = String(s ?? "");
  const shown = visible(raw, oneLine);
  if (shown === raw) return document.createTextNode(raw);
  const span = document.createElement("span");
  span.textContent = shown;
  span.title = "control or formatting characters are shown escaped";
  return span;
}

// Links only to this page (a query string or a path of this origin).
function safeHref(v) {
  const s = String(v);
  return s.startsWith("/") && !s.startsWith("//") ? s : "#";
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function fmtTime(ns) {
  const ms = Number(typeof ns === "string" ? Date.parse(ns) : ns / 1e6);
  if (!Number.isFinite(ms)) return String(ns);
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtCount(n) {
  return Number(n).toLocaleString("en-US");
}

// Nanoseconds from a record's ts (RFC 3339 with up to nine fraction digits).
export function tsNanos(ts) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return Date.parse(ts) * 1e6;
  const whole = Date.parse(m[1] + m[3]);
  const frac = (m[2] || "").padEnd(9, "0").slice(0, 9);
  return whole * 1e6 + Number(frac);
}

// Shows `message` in the banner above the page (`null` hides it); `bad`
// for an outage rather than a partial answer.
export function notice(message, bad = false) {
  const el = document.getElementById("notice");
  if (!el) return;
  el.hidden = !message;
  el.classList.toggle("bad", Boolean(bad));
  el.textContent = message ? visible(message, true) : "";
}
