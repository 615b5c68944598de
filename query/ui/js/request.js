// The request view: every record of one request_id or trace_id across
// apps and services, a waterfall of its spans with the gaps between them,
// and the records in order.

import { get } from "./api.js";
import { h, clear, text, fmtTime, fmtCount, tsNanos, notice } from "./dom.js";
import { go, href } from "./state.js";

export async function renderRequest(main, state) {
  const page = h("div", { class: "page", id: "request" }, h("h2", {}, "Request ", text(state.id, true)), h("div", { class: "muted" }, "Loading…"));
  clear(main, page);
  let answer;
  try {
    answer = await get(`/api/v1/requests/${encodeURIComponent(state.id)}`, {});
  } catch (err) {
    clear(page, h("h2", {}, "Request ", text(state.id, true)), h("div", { class: "error" }, err.message));
    return;
  }
  if (answer.stats?.partial) notice("Partial answer: some data could not be read", false);
  const spans = answer.spans || [];
  const logs = answer.logs || [];
  const start = Math.min(...spans.map((s) => s.first_ts));
  const end = Math.max(...spans.map((s) => s.last_ts));
  const total = Math.max(1, end - start);
  const pct = (ns) => ((ns - start) / total) * 100;
  const ms = (ns) => (ns / 1e6).toFixed(ns < 1e7 ? 2 : 0);
  // Each span's gap: from the latest end before it to its start.
  let latest = -Infinity;
  const gaps = spans.map((s) => {
    const gap = latest > -Infinity && s.first_ts > latest ? latest : null;
    latest = Math.max(latest, s.last_ts);
    return gap;
  });
  const rows = spans.map((s, i) => {
    const bar = h("div", { class: `wf-bar l-${s.level}`, title: `${ms(s.last_ts - s.first_ts)} ms, ${s.count} records` });
    // Positions through the style object (not style attributes, which the
    // page's policy refuses).
    bar.style.left = pct(s.first_ts) + "%";
    bar.style.width = Math.max(0.3, pct(s.last_ts) - pct(s.first_ts)) + "%";
    let gap = null;
    if (gaps[i] !== null) {
      gap = h("div", { class: "wf-gap" });
      gap.style.left = pct(gaps[i]) + "%";
      gap.style.width = pct(s.first_ts) - pct(gaps[i]) + "%";
    }
    return h("div", { class: "wf-row span", dataset: { app: s.app, service: s.service } },
      h("div", { class: "wf-name", title: `${s.app}/${s.service}` }, text(`${s.app} / ${s.service}`, true)),
      h("div", { class: "wf-track" }, gap, bar),
      h("div", { class: "wf-meta" }, `+${ms(s.first_ts - start)} ms · ${ms(s.last_ts - s.first_ts)} ms · ${fmtCount(s.count)}`,
        s.gap_before_ms > 0 ? ` · gap ${s.gap_before_ms.toFixed(1)} ms` : ""));
  });
  const records = logs.map((r) =>
    h("tr", { class: "rec" },
      h("td", { class: "mono muted" }, fmtTime(r.ts)),
      h("td", { class: "mono" }, r.ts ? `+${ms(tsNanos(r.ts) - start)} ms` : ""),
      h("td", { class: `lv-${r.level}` }, r.level),
      h("td", {}, text(`${r.app}/${r.service}`, true)),
      h("td", {}, text(r.host, true)),
      h("td", { class: "tmpl" }, text(r.msg))));
  clear(page,
    h("h2", {}, "Request ", text(state.id, true)),
    h("p", { class: "muted" }, `${fmtCount(answer.total ?? logs.length)} records in ${spans.length} spans over ${ms(end - start)} ms · `,
      h("a", { href: href({ view: "search", q: `request_id:${JSON.stringify(state.id)} OR trace_id:${JSON.stringify(state.id)}`, from: "now-30d" }),
        onclick: (e) => { e.preventDefault(); go({ view: "search", q: `request_id:${JSON.stringify(state.id)} OR trace_id:${JSON.stringify(state.id)}`, from: "now-30d", id: "" }); } }, "search these records")),
    spans.length ? h("div", { class: "waterfall", id: "waterfall" }, rows) : h("p", {}, "No records carry this id."),
    h("h3", {}, "Records"),
    h("table", { class: "grid", id: "request-records" }, h("tr", {}, ["time", "offset", "level", "app/service", "host", "message"].map((c) => h("th", {}, c))), records));
}
