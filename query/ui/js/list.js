// A virtualised list: only the rows in view (and a margin) are in the
// document, so ten thousand records scroll as smoothly as ten. Rows are one
// line high; an opened row is measured and the rows below move down.

const ROW = 23; // px: .row .line height plus its border
const MARGIN = 15; // rows drawn above and below the view

export class VirtualList {
  // `render(record, open)` makes a row's element; `toggle(record)` is
  // called on a click on its line; `onNearEnd()` when the view reaches the
  // last rows.
  constructor(el, render, onNearEnd) {
    this.el = el;
    this.render = render;
    this.onNearEnd = onNearEnd;
    this.records = [];
    this.open = new Map(); // id -> measured height
    this.drawn = new Map(); // id -> element
    this.spacer = document.createElement("div");
    this.spacer.className = "spacer";
    this.tailEl = document.createElement("div");
    this.tailEl.className = "end";
    el.replaceChildren(this.spacer, this.tailEl);
    this.offsets = null;
    this.frame = 0;
    el.addEventListener("scroll", () => this.schedule(), { passive: true });
    addEventListener("resize", () => this.schedule());
  }

  set(records) {
    this.records = records;
    this.open.clear();
    this.clearDrawn();
    this.offsets = null;
    this.el.scrollTop = 0;
    this.draw();
  }

  append(records) {
    this.records = this.records.concat(records);
    this.offsets = null;
    this.draw();
  }

  // Newest first: `records` go on top; at most `cap` are kept.
  prepend(records, cap) {
    const before = this.el.scrollTop;
    this.records = records.concat(this.records);
    if (this.records.length > cap) {
      for (const r of this.records.slice(cap)) this.open.delete(r.id);
      this.records.length = cap;
    }
    this.offsets = null;
    this.clearDrawn();
    // Someone reading further down keeps their place.
    if (before > 0) this.el.scrollTop = before + this.heightOf(records);
    this.draw();
  }

  end(text) {
    this.tailEl.textContent = text || "";
  }

  heightOf(records) {
    let sum = 0;
    for (const r of records) sum += this.open.get(r.id) ?? ROW;
    return sum;
  }

  clearDrawn() {
    for (const el of this.drawn.values()) el.remove();
    this.drawn.clear();
  }

  toggle(record) {
    if (this.open.has(record.id)) this.open.delete(record.id);
    else this.open.set(record.id, ROW);
    const el = this.drawn.get(record.id);
    if (el) {
      el.remove();
      this.drawn.delete(record.id);
    }
    this.offsets = null;
    this.draw();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  layout() {
    if (this.offsets) return;
    const n = this.records.length;
    const offsets = new Float64Array(n + 1);
    for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i] + (this.open.get(this.records[i].id) ?? ROW);
    this.offsets = offsets;
    this.spacer.style.height = offsets[n] + "px";
  }

  // The first row whose bottom is below `y`.
  indexAt(y) {
    const o = this.offsets;
    let lo = 0, hi = this.records.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (o[mid + 1] <= y) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  draw() {
    this.layout();
    this.el.dataset.count = String(this.records.length);
    const top = this.el.scrollTop;
    const first = Math.max(0, this.indexAt(top) - MARGIN);
    const last = Math.min(this.records.length, this.indexAt(top + this.el.clientHeight) + MARGIN);
    const keep = new Set();
    let remeasure = false;
    for (let i = first; i < last; i++) {
      const r = this.records[i];
      keep.add(r.id);
      let el = this.drawn.get(r.id);
      if (!el) {
        el = this.render(r, this.open.has(r.id));
        this.drawn.set(r.id, el);
        this.spacer.append(el);
        if (this.open.has(r.id)) {
          const height = el.offsetHeight;
          if (height !== this.open.get(r.id)) {
            this.open.set(r.id, height);
            remeasure = true;
          }
        }
      }
      el.style.top = this.offsets[i] + "px";
    }
    for (const [id, el] of this.drawn) {
      if (!keep.has(id)) {
        el.remove();
        this.drawn.delete(id);
      }
    }
    if (remeasure) {
      this.offsets = null;
      this.draw();
      return;
    }
    if (this.records.length && last >= this.records.length - MARGIN) this.onNearEnd?.();
  }
}
