// Charts, drawn by uPlot (vendored): the hits histogram stacked by level,
// per-hour bars of the overview, and the error groups' sparklines.

export const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export function levelColor(level) {
  return css("--" + String(level).toLowerCase());
}

const plots = new Set();
addEventListener("resize", () => {
  for (const p of plots) {
    if (!p.root.isConnected) plots.delete(p);
    else p.setSize({ width: p.root.parentElement.clientWidth || 300, height: p.height });
  }
});

// Stacked bars: `groups` is [{group, values}], drawn bottom to top in the
// order given; x is seconds. `onSelect(fromSecs, toSecs)` when a range is
// dragged. Returns the plot, or null when nothing is to be drawn.
export function stacked(el, xs, groups, { height = 120, onSelect, color = levelColor, stepSecs } = {}) {
  el.replaceChildren();
  if (!window.uPlot) return null;
  const raw = groups.map((g) => g.values);
  const cumulative = [];
  let running = new Array(xs.length).fill(0);
  for (const values of raw) {
    running = running.map((v, i) => v + (values[i] || 0));
    cumulative.push(running);
  }
  // The tallest is drawn first, so each level's part shows above the one
  // below it.
  const order = groups.map((_, i) => i).reverse();
  const bars = uPlot.paths.bars({ size: [0.9, 60], align: 1 });
  const series = [{}].concat(
    order.map((i) => ({
      label: groups[i].group,
      fill: color(groups[i].group),
      stroke: color(groups[i].group),
      width: 0,
      paths: bars,
      points: { show: false },
      value: (u, v, si, idx) => (idx == null ? "" : String(raw[order[si - 1]][idx] ?? 0)),
    })),
  );
  const axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } };
  const opts = {
    width: el.clientWidth || 600,
    height,
    series,
    legend: { show: groups.length > 0 },
    scales: { x: { time: true, range: (u, min, max) => [min, max + (stepSecs || 0)] } },
    axes: [axis, { ...axis, size: 56 }],
    cursor: { drag: { x: Boolean(onSelect), y: false, setScale: false }, points: { show: false } },
    hooks: {
      setSelect: [
        (u) => {
          if (!onSelect || u.select.width < 3) return;
          const from = u.posToVal(u.select.left, "x");
          const to = u.posToVal(u.select.left + u.select.width, "x");
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          onSelect(from, to);
        },
      ],
    },
  };
  const plot = new uPlot(opts, [xs, ...order.map((i) => cumulative[i])], el);
  plots.add(plot);
  return plot;
}

// A small line of counts per hour, no axes.
export function sparkline(el, xs, ys, color) {
  el.replaceChildren();
  if (!window.uPlot || xs.length === 0) return null;
  return new uPlot(
    {
      width: 160,
      height: 32,
      series: [{}, { stroke: color, fill: color + "33", width: 1, points: { show: false } }],
      legend: { show: false },
      cursor: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true } },
    },
    [xs, ys],
    el,
  );
}
