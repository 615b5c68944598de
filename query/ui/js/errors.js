// The errors view: the aggregator's groups per app, each with its
// template, count, first and last seen, a sparkline by hour and samples,
// linking to a search for its records.

import { get } from "./api.js";
import { h, clear, text, fmtTime, fmtCount } from "./dom.js";
import { go, href } from "./state.js";
import { sparkline, levelColor } from "./chart.js";

// A search for a group's records: its app, service, and the template's
// words (placeholders such as <num> dropped).
export function groupQuery(g) {
  const words = g.template
    .split(/\s+/)
    .filter((w) => w && !/<[a-z]+>/.test(w))
    .map((w) => w.replace(/^[^\w]+|[^\w]+$/g, ""))
    .filter((w) => /^\w[\w.\-]*$/.test(w))
    .slice(0, 6);
  return [`service:${g.service}`, ...words].join(" ");
}

// Every hour from the first counted one to now (at most 48), zeros where
// the group had none.
function hourly(hours) {
  if (!hours.length) return [[], []];
  const now = Math.floor(Date.now() / 3600000) * 3600;
  const first = Math.max(hours[0][0], now - 47 * 3600);
  const counts = new Map(hours);
  const xs = [];
  for (let t = first; t <= Math.max(now, first); t += 3600) xs.push(t);
  return [xs, xs.map((t) => counts.get(t) || 0)];
}

export async function renderErrors(main, state) {
  const page = h("div", { class: "page", id: "errors" }, h("h2", {}, "Errors"), h("div", { class: "muted" }, "Loading…"));
  clear(main, page);
  let answer;
  try {
    answer = await get("/api/v1/errors", { app: state.app || undefined, start_time: "now-30d", limit: 500 });
  } catch (err) {
    clear(page, h("h2", {}, "Errors"), h("div", { class: "error" }, err.message));
    return;
  }
  const byApp = new Map();
  for (const g of answer.errors) {
    if (!byApp.has(g.app)) byApp.set(g.app, []);
    byApp.get(g.app).push(g);
  }
  const sections = [...byApp.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([app, groups]) => {
    const rows = groups.map((g) => {
      const spark = h("div", { class: "spark" });
      const q = groupQuery(g);
      const to = new Date(g.last_seen / 1e6 + 1000).toISOString();
      const from = new Date(g.first_seen / 1e6).toISOString();
      const link = { view: "search", app: g.app, q, from, to };
      const samples = h("details", {}, h("summary", { class: "muted small" }, `${g.samples.length} samples · ${g.hosts.length}${g.more_hosts ? "+" : ""} hosts`),
        h("ul", { class: "small" }, g.samples.map((s) => h("li", { class: "tmpl" }, h("span", { class: "muted" }, fmtTime(s.ts) + " "), text(s.host, true), " ", text(s.msg, true),
          s.request_id ? [" ", h("a", { href: href({ view: "request", id: s.request_id }), onclick: (e) => { e.preventDefault(); go({ view: "request", id: s.request_id }); } }, text(s.request_id, true))] : null))));
      const tr = h("tr", { class: "group", dataset: { fingerprint: g.fingerprint } },
        h("td", {}, h("a", { href: href(link), onclick: (e) => { e.preventDefault(); go(link); } }, h("span", { class: "tmpl" }, text(g.template, true))), h("div", { class: "muted small" }, text(g.service, true), ` · ${g.level}`), samples),
        h("td", { class: "num" }, fmtCount(g.count)),
        h("td", { class: "small" }, fmtTime(g.first_seen)),
        h("td", { class: "small" }, fmtTime(g.last_seen)),
        h("td", {}, spark));
      requestAnimationFrame(() => sparkline(spark, ...hourly(g.hours || []), levelColor(g.level)));
      return tr;
    });
    return h("section", { dataset: { app } },
      h("h3", {}, text(app, true), h("span", { class: "muted small" }, ` ${groups.length} groups`)),
      h("table", { class: "grid" }, h("tr", {}, ["template", "count", "first seen", "last seen", "by hour"].map((c) => h("th", {}, c))), rows));
  });
  clear(page, h("h2", {}, "Errors", h("span", { class: "muted small" }, ` ${fmtCount(answer.total)} groups, latest first`)),
    sections.length ? sections : h("p", { class: "muted" }, "No error groups yet: the aggregator groups ERROR and FATAL records by their message."));
}
