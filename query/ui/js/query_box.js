// The query box: completion of field names and values, the language's
// help, and a refused query's error marked at its position.

import { h, clear, visible } from "./dom.js";

export const BUILTIN_FIELDS = ["app", "service", "host", "level", "msg", "source", "id", "request_id", "trace_id"];

const HELP = [
  ["payment declined", "both words, whole words, any case, in the message or any attribute value"],
  ['"card expired"', "the phrase"],
  ["pay*", "a word starting with pay"],
  ["/time(d)? ?out/", "a regular expression over the message"],
  ["service:checkout  host:web-*", "a field or attribute: equal (any case), or a prefix"],
  ["user:/^adm/", "a field matching a regular expression"],
  ["level:>=warn  level:error", "levels by rank"],
  ["-debug  NOT x  a OR b  (a OR b) c", "negation, either, grouping"],
];

function quote(value) {
  return /^[\w.@\-/]+$/.test(value) && !/^(AND|OR|NOT)$/.test(value) ? value : JSON.stringify(value);
}

// `fields()` lists field names to offer; `values(field)` a promise of values.
export function queryBox({ value, fields, values, onSubmit }) {
  const input = h("input", {
    class: "q",
    id: "q",
    type: "search",
    value,
    placeholder: "Search: words, \"phrases\", field:value, level:>=warn … (press / to focus)",
    spellcheck: "false",
    autocomplete: "off",
    "aria-label": "query",
  });
  const list = h("ul", { class: "suggest", hidden: true, role: "listbox" });
  const error = h("div", { class: "qerr", hidden: true, id: "qerr" });
  const help = h(
    "div",
    { class: "help small", hidden: true, id: "help" },
    h("table", {}, HELP.map(([q, what]) => h("tr", {}, h("td", { class: "mono" }, q), h("td", {}, what)))),
    h("div", { class: "muted" }, "Tab or Enter takes a suggestion; Esc closes it. Fields: ", BUILTIN_FIELDS.join(", "), ", and any attribute."),
  );
  const wrap = h("div", { class: "qwrap" }, input, list, error);
  let items = [], selected = -1, seq = 0;

  function token() {
    const caret = input.selectionStart ?? input.value.length;
    const before = input.value.slice(0, caret);
    const m = /[^\s()]*$/.exec(before);
    return { start: caret - m[0].length, end: caret, text: m[0] };
  }

  async function suggest() {
    const t = token();
    const mine = ++seq;
    let offers = [];
    const neg = t.text.startsWith("-") ? "-" : "";
    const body = t.text.slice(neg.length);
    const colon = body.indexOf(":");
    if (colon > 0) {
      const field = body.slice(0, colon);
      const prefix = body.slice(colon + 1).replace(/^"/, "").toLowerCase();
      const vals = field === "level" ? ["trace", "debug", "info", "warn", "error", "fatal", ">=warn", ">=error"] : await values(field);
      if (mine !== seq) return;
      offers = vals
        .filter((v) => String(v).toLowerCase().startsWith(prefix))
        .slice(0, 50)
        .map((v) => ({ label: `${field}:${v}`, insert: `${neg}${field}:${quote(String(v))} ` }));
    } else if (body.length > 0) {
      offers = fields()
        .filter((f) => f.toLowerCase().startsWith(body.toLowerCase()) && f !== body)
        .slice(0, 50)
        .map((f) => ({ label: f + ":", insert: `${neg}${f}:` }));
    }
    show(offers, t);
  }

  function show(offers, t) {
    items = offers.map((o) => ({ ...o, t }));
    selected = items.length ? 0 : -1;
    clear(list, items.map((o, i) => h("li", { role: "option", class: i === selected ? "sel" : "", onmousedown: (e) => { e.preventDefault(); take(i); } }, visible(o.label, true))));
    list.hidden = items.length === 0;
  }

  function close() {
    items = [];
    list.hidden = true;
  }

  function take(i) {
    const o = items[i];
    if (!o) return;
    const v = input.value;
    input.value = v.slice(0, o.t.start) + o.insert + v.slice(o.t.end);
    const caret = o.t.start + o.insert.length;
    input.setSelectionRange(caret, caret);
    close();
    input.focus();
    if (o.insert.endsWith(":")) suggest();
  }

  input.addEventListener("input", () => { setError(null); suggest(); });
  // Closed when the focus has gone elsewhere (a click on a suggestion
  // lands first; focus that came back keeps the list).
  input.addEventListener("blur", () => setTimeout(() => { if (document.activeElement !== input) close(); }, 100));
  input.addEventListener("keydown", (e) => {
    if (!list.hidden && items.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        selected = (selected + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        list.querySelectorAll("li").forEach((li, i) => li.classList.toggle("sel", i === selected));
        return;
      }
      if (e.key === "Tab" || (e.key === "Enter" && selected >= 0 && !e.ctrlKey)) {
        e.preventDefault();
        take(selected);
        return;
      }
      if (e.key === "Escape") {
        close();
        return;
      }
    }
    if (e.key === "Enter") {
      e.preventDefault();
      close();
      onSubmit(input.value);
    }
  });

  // Shows a refused query's message, the position marked under the text.
  function setError(message) {
    input.classList.toggle("bad", Boolean(message));
    error.hidden = !message;
    if (!message) return;
    const m = /^query: at (\d+): (.*)$/s.exec(message);
    if (!m) {
      error.textContent = message;
      return;
    }
    const at = Math.max(1, Number(m[1]));
    const chars = [...input.value];
    const caretLine = " ".repeat(Math.min(at - 1, chars.length)) + "^";
    error.textContent = `${visible(input.value, true)}\n${caretLine}\n${m[2]}`;
    error.dataset.position = String(at);
    const offset = chars.slice(0, at - 1).join("").length;
    input.setSelectionRange(offset, Math.min(input.value.length, offset + 1));
  }

  return { wrap, input, help, setError, close };
}
