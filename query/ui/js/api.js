// The query service's API, with the token asked once when it needs one.

const TOKEN_KEY = "sluice.token";
let waiting = null;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function token() {
  return localStorage.getItem(TOKEN_KEY);
}

function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

// Asks for a token (one dialog however many requests wait for it).
function askToken(reason) {
  if (waiting) return waiting;
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  document.getElementById("token-error").textContent = reason || "";
  waiting = new Promise((resolve) => {
    const form = document.getElementById("token-form");
    const done = (e) => {
      e.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      localStorage.setItem(TOKEN_KEY, value);
      form.removeEventListener("submit", done);
      dialog.close();
      waiting = null;
      resolve();
    };
    form.addEventListener("submit", done);
    dialog.showModal();
    input.focus();
  });
  return waiting;
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

// GET `path` with `params` (an object; arrays repeat), as JSON.
export async function get(path, params, signal) {
  const response = await call(path, params, signal);
  return response.json();
}

// The response itself (for streams), after the token dance.
export async function call(path, params, signal) {
  const url = path + query(params);
  for (;;) {
    let response;
    try {
      response = await fetch(url, { headers: headers(), signal });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "the query service cannot be reached: " + err.message);
    }
    if (response.status === 401) {
      const body = await response.json().catch(() => ({}));
      const had = token();
      forgetToken();
      await askToken(had ? "That token was refused: " + (body.error || "401") : "");
      continue;
    }
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new ApiError(response.status, body.error || `${response.status} ${response.statusText}`);
    }
    return response;
  }
}

export function query(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) p.append(k, one);
  }
  const s = p.toString();
  return s ? "?" + s : "";
}

// Server-sent events over fetch (so the token goes in a header): calls
// `onEvent(type, data, id)` until `signal` aborts; reconnects after the last
// id when the stream breaks.
export async function events(path, params, onEvent, signal, onState) {
  let last = null;
  while (!signal.aborted) {
    try {
      const response = await fetch(path + query(params), {
        headers: { ...headers(), Accept: "text/event-stream", ...(last ? { "Last-Event-ID": last } : {}) },
        signal,
      });
      if (response.status === 401) {
        forgetToken();
        await askToken("");
        continue;
      }
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new ApiError(response.status, body.error || String(response.status));
      }
      onState?.("live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = "message", data = [], id = null;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") type = val;
            else if (field === "data") data.push(val);
            else if (field === "id") id = val;
          }
          if (id) last = id;
          if (data.length) onEvent(type, data.join("\n"), id);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
        onState?.("error", err.message);
        return;
      }
      onState?.("reconnecting", err.message);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}
