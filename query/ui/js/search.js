// The search view: query box, time range, facets, the histogram stacked by
// level, results newest first with endless scrolling, expansion to every
// field, context around a record, and the live tail.

import { get, events, ApiError } from "./api.js";
import { h, clear, text, fmtTime, fmtCount, visible, notice } from "./dom.js";
import { go, filters, href } from "./state.js";
import { queryBox, BUILTIN_FIELDS } from "./query_box.js";
import { VirtualList } from "./list.js";
import { stacked, LEVELS } from "./chart.js";

// The first page is small, so it comes fast; the pages after it, fetched
// while scrolling, are larger, so deep scrolling takes few requests.
const PAGE = 100;
const MORE = 1000;
const PRESETS = [["now-15m", "15 min"], ["now-1h", "1 h"], ["now-24h", "24 h"], ["now-7d", "7 d"], ["now-30d", "30 d"]];
const FACETS = ["app", "service", "level", "host"];
const CAPS = ["500", "1000", "5000", "10000"];
// Hosts are not in the index: counting them reads every matching blob, so
// beyond this many matches it waits for a click.
const HOST_AUTO = 200000;

let view = null; // the view drawn now

export function renderSearch(main, state) {
  view?.stop();
  view = new SearchView(main, state);
}

export function stopSearch() {
  view?.stop();
  view = null;
}

// Adds `term` to `query` (or removes its opposite).
export function withTerm(query, term) {
  const q = query.trim();
  const opposite = term.startsWith("-") ? term.slice(1) : "-" + term;
  const parts = q ? q.split(/\s+/) : [];
  if (parts.includes(term)) return q;
  return parts.filter((p) => p !== opposite).concat(term).join(" ");
}

function termFor(field, value, exclude) {
  const v = /^[\w.@\-/]+$/.test(value) && !/^(AND|OR|NOT)$/.test(value) ? value : JSON.stringify(value);
  return (exclude ? "-" : "") + `${field}:${v}`;
}

function isoOf(secs) {
  return new Date(secs * 1000).toISOString();
}

function localInput(value) {
  // An absolute time shown in a datetime-local input (local time).
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) return "";
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

class SearchView {
  constructor(main, state) {
    this.state = state;
    this.abort = new AbortController();
    this.attrKeys = new Set();
    this.attrValues = new Map();
    this.facetValues = new Map();
    this.cursor = null;
    this.loading = false;
    this.paused = false;
    this.pending = [];
    this.build(main);
    this.run();
  }

  stop() {
    this.abort.abort();
  }

  build(main) {
    const s = this.state;
    this.box = queryBox({
      value: s.q,
      fields: () => [...BUILTIN_FIELDS, ...[...this.attrKeys].sort()],
      values: (f) => this.valuesOf(f),
      onSubmit: (q) => go({ q }),
    });
    const helpButton = h("button", { title: "query syntax", onclick: () => (this.box.help.hidden = !this.box.help.hidden) }, "?");
    const preset = h(
      "select",
      { "aria-label": "time range", id: "range", onchange: (e) => go({ from: e.target.value, to: "" }) },
      PRESETS.map(([v, label]) => h("option", { value: v, selected: s.from === v && !s.to }, "Last " + label)),
      !PRESETS.some(([v]) => v === s.from) || s.to ? h("option", { value: s.from, selected: true }, "Custom") : null,
    );
    const fromInput = h("input", { type: "datetime-local", step: "1", value: localInput(s.from), "aria-label": "from", id: "from" });
    const toInput = h("input", { type: "datetime-local", step: "1", value: localInput(s.to), "aria-label": "to", id: "to" });
    const apply = h("button", {
      onclick: () => {
        const from = fromInput.value ? new Date(fromInput.value).toISOString() : s.from;
        const to = toInput.value ? new Date(toInput.value).toISOString() : "";
        go({ from, to });
      },
    }, "Apply");
    const live = s.tail === "1";
    this.pauseButton = h("button", { id: "pause", hidden: !live, onclick: () => this.togglePause() }, "Pause");
    const cap = h("select", { "aria-label": "lines kept", hidden: !live, onchange: (e) => go({ cap: e.target.value }, true) },
      CAPS.map((c) => h("option", { value: c, selected: s.cap === c }, `keep ${fmtCount(c)}`)));
    const tail = h("button", { id: "live", class: live ? "on" : "", title: "stream new matches as they arrive", onclick: () => go({ tail: live ? "" : "1" }) }, live ? "● Live" : "Live tail");
    const search = h("button", { onclick: () => go({ q: this.box.input.value }) }, "Search");
    const facetsToggle = h("button", { class: "facets-toggle", onclick: () => this.layout.classList.toggle("facets-open") }, "Facets");
    this.side = h("aside", { class: "side", id: "facets" });
    this.chart = h("div", { class: "chart", id: "histogram" });
    this.stats = h("span", { class: "muted small", id: "stats" });
    this.count = h("span", { id: "count" });
    this.listEl = h("div", { class: "list", id: "results" });
    this.layout = h("div", { class: "layout" }, this.side, h("div", { class: "content" }, this.chart, h("div", { class: "status" }, this.count, this.stats), this.listEl));
    clear(
      main,
      h("div", { class: "bar" }, this.box.wrap, helpButton, search, h("span", { class: "range" }, preset, fromInput, "–", toInput, apply), tail, this.pauseButton, cap, facetsToggle),
      this.box.help,
      this.layout,
    );
    this.list = new VirtualList(this.listEl, (r, open) => this.row(r, open), () => this.more());
  }

  async valuesOf(field) {
    if (field === "app") {
      const { apps } = await get("/api/v1/apps", {}, this.abort.signal).catch(() => ({ apps: [] }));
      return apps;
    }
    if (this.facetValues.has(field)) return this.facetValues.get(field);
    return [...(this.attrValues.get(field) || [])].sort();
  }

  learn(records) {
    for (const r of records) {
      for (const [k, v] of Object.entries(r.attrs || {})) {
        if (this.attrKeys.size < 2000) this.attrKeys.add(k);
        let set = this.attrValues.get(k);
        if (!set) this.attrValues.set(k, (set = new Set()));
        if (set.size < 200) set.add(String(v));
      }
    }
  }

  fail(err, what) {
    if (err.name === "AbortError") return;
    if (err instanceof ApiError && err.status === 400 && /^query/.test(err.message)) {
      this.box.setError(err.message);
      return;
    }
    notice(`${what}: ${err.message}`, true);
  }

  run() {
    notice(null);
    this.box.setError(null);
    this.facetsPending();
    const results = this.state.tail === "1" ? Promise.resolve(this.startTail()) : this.search();
    // The results first: the histogram and the facets would share the
    // service's cores with the search that fills the screen.
    results.finally(() => {
      if (this.abort.signal.aborted) return;
      this.histogram();
      this.facets();
    });
  }

  async search() {
    this.list.set([]);
    this.list.end("Searching…");
    this.cursor = null;
    try {
      const answer = await get("/api/v1/logs/search", { ...filters(this.state), limit: PAGE }, this.abort.signal);
      this.show(answer, false);
    } catch (err) {
      this.list.end("");
      this.fail(err, "The search failed");
    }
  }

  show(answer, appended) {
    this.learn(answer.logs);
    if (appended) this.list.append(answer.logs);
    else this.list.set(answer.logs);
    this.cursor = answer.next_cursor || null;
    this.shown = (appended ? this.shown : 0) + answer.logs.length;
    const st = answer.stats || {};
    this.count.textContent = `${fmtCount(answer.total)}${answer.total_exact ? "" : "+"} hits`;
    this.count.dataset.total = String(answer.total);
    this.stats.textContent =
      `blobs read ${fmtCount(st.blobs_read ?? 0)} of ${fmtCount(st.blobs_considered ?? 0)}` +
      ` · skipped ${fmtCount((st.blobs_considered ?? 0) - (st.blobs_read ?? 0))}` +
      ` · ${fmtCount(st.records_scanned ?? 0)} scanned · ${st.elapsed_ms ?? 0} ms` +
      (st.cold_partitions ? ` · ${fmtCount(st.cold_partitions)} hours from the cold store` : "");
    if (st.restore_needed?.length) {
      notice(`Partial answer: ${st.restore_needed.length} cold hours need a restore from archive first (${st.restore_needed.slice(0, 3).join(", ")}${st.restore_needed.length > 3 ? ", …" : ""})`, false);
    } else if (st.partial) {
      const why = st.errors?.length ? st.errors.join("; ") : "some data could not be read in time";
      notice(`Partial answer: ${why}`, false);
    } else if (st.expired?.length && !answer.logs.length) {
      notice(`Nothing here: ${st.expired.join("; ")}.`, false);
    }
    this.list.end(this.cursor ? "Loading more…" : this.shown ? `End of results (${fmtCount(this.shown)})` : "No matches in this range.");
    // When these results are on screen (the benchmark reads it).
    if (!appended) requestAnimationFrame(() => performance.mark("sluice:results"));
  }

  async more() {
    if (!this.cursor || this.loading || this.state.tail === "1") return;
    this.loading = true;
    try {
      const answer = await get("/api/v1/logs/search", { ...filters(this.state), limit: MORE, cursor: this.cursor }, this.abort.signal);
      this.show(answer, true);
    } catch (err) {
      this.fail(err, "Loading more failed");
    } finally {
      this.loading = false;
    }
  }

  async histogram() {
    try {
      const hits = await get("/api/v1/logs/hits", { ...filters(this.state), by: "level" }, this.abort.signal);
      const groups = LEVELS.map((l) => hits.series.find((s) => s.group === l)).filter(Boolean);
      const sum = groups.reduce((a, g) => a + g.values.reduce((x, y) => x + y, 0), 0);
      this.chart.dataset.sum = String(sum);
      this.chart.dataset.total = String(hits.total);
      stacked(this.chart, hits.timestamps, groups, {
        stepSecs: hits.step_secs,
        onSelect: (from, to) => go({ from: isoOf(Math.floor(from)), to: isoOf(Math.ceil(to)) }),
      });
      this.facet("level", hits.series.map((s) => ({ group: s.group, total: s.total })));
      this.hosts(hits.total);
      if (hits.stats?.partial) notice("The histogram is partial: some data could not be read", false);
    } catch (err) {
      this.chart.dataset.sum = "";
      this.fail(err, "The histogram failed");
    }
    // When the histogram is done, drawn or failed (the benchmark reads it).
    performance.mark("sluice:histogram");
  }

  facetsPending() {
    clear(this.side, ...FACETS.map((f) => h("div", { class: "facet", id: "facet-" + f }, h("h4", {}, f), h("div", { class: "muted small" }, "…"))));
  }

  async facets() {
    await Promise.all(["app", "service"].map((by) => this.countBy(by)));
  }

  async countBy(by) {
    try {
      const hits = await get("/api/v1/logs/hits", { ...filters(this.state), by }, this.abort.signal);
      this.facet(by, hits.series);
    } catch (err) {
      if (err.name === "AbortError") return;
      const el = this.side.querySelector("#facet-" + by);
      if (el) clear(el, h("h4", {}, by), h("div", { class: "error small" }, err.message));
    }
  }

  // The host facet: counted at once for up to HOST_AUTO matches, else on
  // a click (it reads the blobs).
  hosts(total) {
    const el = this.side.querySelector("#facet-host");
    if (!el) return;
    if (total <= HOST_AUTO) {
      this.countBy("host");
      return;
    }
    clear(el, h("h4", {}, "host"), h("button", { id: "count-hosts", title: "hosts are not indexed: this reads every matching record", onclick: () => {
      clear(el, h("h4", {}, "host"), h("div", { class: "muted small" }, "…"));
      this.countBy("host");
    } }, `Count hosts of ${fmtCount(total)} records`));
  }

  facet(field, series) {
    const el = this.side.querySelector("#facet-" + field);
    if (!el) return;
    this.facetValues.set(field, series.map((s) => s.group));
    const items = series.slice(0, 30).map((s) =>
      h("li", { dataset: { value: s.group, count: String(s.total) } },
        h("span", { class: "v", title: visible(s.group, true), onclick: () => this.include(field, s.group) }, text(s.group || "(none)", true)),
        h("span", { class: "n" }, fmtCount(s.total)),
        h("button", { title: "only this", onclick: () => this.include(field, s.group) }, "+"),
        h("button", { title: "not this", onclick: () => this.exclude(field, s.group) }, "−")),
    );
    clear(el, h("h4", {}, field), items.length ? h("ul", {}, items) : h("div", { class: "muted small" }, "none"),
      series.length > 30 ? h("div", { class: "muted small" }, `and ${series.length - 30} more`) : null);
  }

  include(field, value) {
    if (field === "app") go({ app: value });
    else go({ q: withTerm(this.state.q, termFor(field, value, false)) });
  }

  exclude(field, value) {
    go({ q: withTerm(this.state.q, termFor(field, value, true)) });
  }

  row(r, open) {
    const el = h("div", { class: `row l-${r.level}${open ? " open" : ""}`, dataset: { id: r.id } },
      h("div", { class: "line", onclick: () => this.list.toggle(r) },
        h("span", { class: "ts" }, fmtTime(r.ts)),
        h("span", { class: `lv lv-${r.level}` }, r.level),
        h("span", { class: "src" }, text(`${r.app}/${r.service}`, true)),
        h("span", { class: "src host" }, text(r.host, true)),
        h("span", { class: "msg" }, text(r.msg, true))));
    if (open) el.append(this.details(r));
    return el;
  }

  details(r) {
    const rows = [
      ["ts", r.ts, "ts"], ["level", r.level, "level"], ["app", r.app, "app"], ["service", r.service, "service"],
      ["host", r.host, "host"], ["source", r.source, "source"], ["id", r.id, "id"], ["msg", r.msg, "msg"],
      ...Object.entries(r.attrs || {}).map(([k, v]) => [k, v, k]),
    ];
    const linkable = new Set(["request_id", "trace_id"]);
    return h("div", { class: "fields" },
      h("table", {}, rows.map(([k, v, field]) =>
        h("tr", {},
          h("td", { class: "k", title: visible(k, true) }, text(k, true)),
          h("td", { class: "a" }, field === "ts" ? null : [
            h("button", { title: "filter on this value", onclick: () => this.include(field, String(v)) }, "+"),
            h("button", { title: "exclude this value", onclick: () => this.exclude(field, String(v)) }, "−"),
          ]),
          h("td", { class: "val" }, linkable.has(k) && v
            ? h("a", { href: href({ view: "request", id: String(v) }), class: "reqlink", onclick: (e) => { e.preventDefault(); go({ view: "request", id: String(v) }); } }, text(v, true))
            : text(v))))),
      h("div", { class: "acts" },
        h("button", { class: "context", onclick: () => this.context(r) }, "Show context"),
        h("button", { onclick: () => navigator.clipboard?.writeText(JSON.stringify(r)) }, "Copy JSON")));
  }

  async context(r) {
    const box = h("div", { class: "ctx", id: "context" }, "Loading…");
    const overlay = h("div", { class: "overlay", onclick: (e) => e.target === overlay && overlay.remove() },
      h("div", { class: "box" },
        h("header", {}, h("span", {}, text(`Context of ${r.app}/${r.service} on ${r.host}`, true)), h("button", { onclick: () => overlay.remove() }, "Close")),
        box));
    document.body.append(overlay);
    const esc = (e) => { if (e.key === "Escape") { overlay.remove(); removeEventListener("keydown", esc); } };
    addEventListener("keydown", esc);
    try {
      const answer = await get(`/api/v1/logs/${encodeURIComponent(r.id)}/context`, { app: r.app, before: 25, after: 25 });
      clear(box, answer.logs.map((l) => h("div", { class: l.id === r.id ? "here" : "" },
        h("span", { class: "muted" }, fmtTime(l.ts) + " "), h("span", { class: `lv-${l.level}` }, l.level.padEnd(6)), text(l.msg, true))));
      box.querySelector(".here")?.scrollIntoView({ block: "center" });
    } catch (err) {
      clear(box, h("div", { class: "error" }, err.message));
    }
  }

  startTail() {
    const cap = Number(this.state.cap) || 1000;
    this.list.set([]);
    this.list.end("Waiting for new records…");
    this.count.textContent = "Live";
    let frame = 0;
    const flush = () => {
      frame = 0;
      if (this.paused || !this.pending.length) return;
      const batch = this.pending.reverse();
      this.pending = [];
      this.learn(batch);
      this.list.prepend(batch, cap);
      this.list.end(`${fmtCount(this.list.records.length)} records shown (at most ${fmtCount(cap)})`);
    };
    const { query, app } = filters(this.state);
    events("/api/v1/logs/tail", { query, app }, (type, data) => {
      if (type === "gap") {
        notice("The live tail skipped records that arrived faster than they could be sent.", false);
        return;
      }
      let r;
      try { r = JSON.parse(data); } catch { return; }
      this.pending.push(r);
      if (this.pending.length > cap) this.pending.splice(0, this.pending.length - cap);
      if (this.paused) this.pauseButton.textContent = `Resume (${fmtCount(this.pending.length)} new)`;
      else if (!frame) frame = requestAnimationFrame(flush);
    }, this.abort.signal, (st, message) => {
      this.stats.textContent = st === "live" ? "streaming" : st === "error" ? message : `reconnecting: ${message}`;
      if (st === "error") this.fail(new ApiError(400, message), "The live tail failed");
    });
    this.flush = flush;
  }

  togglePause() {
    this.paused = !this.paused;
    this.pauseButton.classList.toggle("on", this.paused);
    this.pauseButton.textContent = this.paused ? "Resume" : "Pause";
    if (!this.paused) this.flush?.();
  }
}
