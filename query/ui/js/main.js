// The page: one view at a time (search, request, errors, overview), chosen
// by the URL, which holds the whole state.

import { read, onChange, go } from "./state.js";
import { renderSearch, stopSearch } from "./search.js";
import { renderRequest } from "./request.js";
import { renderErrors } from "./errors.js";
import { renderOverview } from "./overview.js";
import { notice } from "./dom.js";

const main = document.getElementById("main");

function render(state) {
  notice(null);
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === state.view || (state.view === "request" && a.dataset.view === "search"));
  }
  document.title = state.view === "search" && state.q ? `${state.q} · Sluice` : `Sluice · ${state.view}`;
  if (state.view !== "search") stopSearch();
  switch (state.view) {
    case "request":
      return renderRequest(main, state);
    case "errors":
      return renderErrors(main, state);
    case "overview":
      return renderOverview(main, state);
    default:
      return renderSearch(main, state);
  }
}

// Links of the navigation move through history without a reload.
document.addEventListener("click", (e) => {
  const a = e.target.closest?.("a[data-view]");
  if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  go({ view: a.dataset.view, id: "" });
});

// "/" focuses the search box, as in most search pages.
document.addEventListener("keydown", (e) => {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t?.isContentEditable) return;
  const q = document.getElementById("q");
  if (q) {
    e.preventDefault();
    q.focus();
    q.select();
  } else {
    e.preventDefault();
    go({ view: "search" });
  }
});

function start() {
  onChange(render);
  render(read());
}

// uPlot loads as a classic deferred script; modules run after it.
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
