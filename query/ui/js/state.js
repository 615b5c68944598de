// The page's whole state lives in the URL's query string, so a link shows
// the same view and back/forward move between views.

export const DEFAULTS = { view: "search", q: "", app: "", from: "now-24h", to: "", tail: "", id: "", cap: "1000" };

export function read() {
  const p = new URLSearchParams(location.search);
  const s = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS)) if (p.has(k)) s[k] = p.get(k);
  return s;
}

export function href(state) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (k in DEFAULTS && v !== DEFAULTS[k] && v !== undefined && v !== null) p.set(k, v);
  }
  const s = p.toString();
  return "/" + (s ? "?" + s : "");
}

let listener = null;

export function onChange(f) {
  listener = f;
  addEventListener("popstate", () => f(read()));
}

// Moves to `changes` applied to the current state (a new history entry
// unless `replace`).
export function go(changes, replace = false) {
  const next = { ...read(), ...changes };
  const url = href(next);
  if (url === location.pathname + location.search) return listener?.(next);
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  listener?.(next);
}

// The API's filters for a state.
export function filters(s) {
  return { query: s.q, app: s.app || undefined, start_time: s.from || undefined, end_time: s.to || undefined };
}
