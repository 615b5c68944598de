// The overview: each app's volume by hour and level from the aggregator's
// counts, and the alerter's firing alerts and silences.

import { get } from "./api.js";
import { h, clear, text, fmtTime, fmtCount } from "./dom.js";
import { stacked, LEVELS } from "./chart.js";
import { go } from "./state.js";

export async function renderOverview(main, state) {
  const charts = h("div", { id: "volume" }, h("div", { class: "muted" }, "Loading…"));
  const alerts = h("div", { id: "alerts" }, h("div", { class: "muted" }, "Loading…"));
  clear(main, h("div", { class: "page", id: "overview" }, h("h2", {}, "Overview"), h("h3", {}, "Volume by hour, last 24 hours"), charts, h("h3", {}, "Alerts"), alerts));
  const [counts, firing] = await Promise.allSettled([
    get("/api/v1/aggregates", { app: state.app || undefined }),
    get("/api/v1/alerts", {}),
  ]);
  if (counts.status === "rejected") clear(charts, h("div", { class: "error" }, counts.reason.message));
  else drawVolume(charts, counts.value.rows);
  if (firing.status === "rejected") clear(alerts, h("div", { class: "error" }, firing.reason.message));
  else drawAlerts(alerts, firing.value);
}

function drawVolume(el, rows) {
  const hourOf = (s) => Math.floor(Date.parse(s) / 1000);
  const apps = new Map();
  for (const r of rows) {
    if (!apps.has(r.app)) apps.set(r.app, []);
    apps.get(r.app).push(r);
  }
  if (!apps.size) {
    clear(el, h("p", { class: "muted" }, "No counts yet: the aggregator counts every record per app, service, level and hour."));
    return;
  }
  const now = Math.floor(Date.now() / 3600000) * 3600;
  const xs = Array.from({ length: 24 }, (_, i) => now - (23 - i) * 3600);
  clear(el);
  for (const [app, list] of [...apps.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const groups = LEVELS.map((level) => {
      const values = xs.map(() => 0);
      for (const r of list) {
        if (r.level !== level) continue;
        const i = xs.indexOf(hourOf(r.hour));
        if (i >= 0) values[i] += r.count;
      }
      return { group: level, values };
    }).filter((g) => g.values.some((v) => v > 0));
    const total = groups.reduce((a, g) => a + g.values.reduce((x, y) => x + y, 0), 0);
    const chart = h("div", { class: "chart" });
    el.append(h("div", { class: "chart-app", dataset: { app } },
      h("a", { href: "#", onclick: (e) => { e.preventDefault(); go({ view: "search", app, q: "", from: "now-24h", to: "" }); } }, text(app, true)),
      h("span", { class: "muted small" }, ` ${fmtCount(total)} records`), chart));
    requestAnimationFrame(() => stacked(chart, xs, groups, { height: 110, stepSecs: 3600 }));
  }
}

function drawAlerts(el, { firing, silences }) {
  clear(el,
    h("table", { class: "grid", id: "firing" }, h("tr", {}, ["firing", "app", "group", "last notified"].map((c) => h("th", {}, c))),
      firing.length ? firing.map((a) => h("tr", {}, h("td", { class: "error" }, text(a.rule, true)), h("td", {}, text(a.app ?? "*", true)), h("td", {}, text(a.values.join(", "), true)), h("td", {}, fmtTime(a.last_notified))))
        : h("tr", {}, h("td", { class: "muted", colspan: "4" }, "Nothing is firing."))),
    h("h3", {}, "Silences"),
    h("table", { class: "grid", id: "silences" }, h("tr", {}, ["silence", "rule", "app", "until", "comment", "by"].map((c) => h("th", {}, c))),
      silences.length ? silences.map((s) => h("tr", {}, h("td", { class: "mono" }, text(s.id, true)), h("td", {}, text(s.rule ?? "*", true)), h("td", {}, text(s.app ?? "*", true)), h("td", {}, fmtTime(s.until)), h("td", {}, text(s.comment, true)), h("td", {}, text(s.created_by, true))))
        : h("tr", {}, h("td", { class: "muted", colspan: "6" }, "No silences in force."))));
}
