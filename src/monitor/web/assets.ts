/**
 * The page's assets, shipped inside the package as strings (no CDN, no
 * build step, nothing fetched from the internet): the stylesheet (light and
 * dark, one column on a phone), the script that applies live updates, and
 * the icon. Served under content-hashed names, so they are cached for good.
 */
import { createHash } from "node:crypto";

const CSS = `
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --card: #ffffff; --text: #1b1f24; --muted: #59636e; --border: #d8dee4;
  --good: #1a7f37; --bad: #cf222e; --warn: #9a6700; --info: #0969da; --idle: #6e7781;
  --good-bg: #dafbe1; --bad-bg: #ffebe9; --warn-bg: #fff8c5; --info-bg: #ddf4ff; --idle-bg: #eaeef2;
  --bar: #2da44e; --bar-partial: #bf8700; --bar-down: #ff818266; --base: #d0d7de;
  --mem-used: #0969da; --mem-free: #d0d7de;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --card: #161b22; --text: #e6edf3; --muted: #9198a1; --border: #30363d;
    --good: #3fb950; --bad: #f85149; --warn: #d29922; --info: #58a6ff; --idle: #8b949e;
    --good-bg: #12261e; --bad-bg: #3c1618; --warn-bg: #362a0d; --info-bg: #0c2d4a; --idle-bg: #21262d;
    --bar: #3fb950; --bar-partial: #d29922; --bar-down: #f8514955; --base: #30363d;
    --mem-used: #58a6ff; --mem-free: #30363d;
  }
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--text); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
a { color: var(--info); }
code { font-size: 0.9em; }
.top { display: flex; align-items: center; justify-content: space-between; gap: 1rem; padding: 0.75rem 1rem; border-bottom: 1px solid var(--border); background: var(--card); position: sticky; top: 0; z-index: 1; }
.top h1 { font-size: 1.15rem; margin: 0; }
.env { font-weight: 500; color: var(--muted); }
.live { font-size: 0.8rem; color: var(--muted); white-space: nowrap; }
.live::before { content: ""; display: inline-block; width: 0.55rem; height: 0.55rem; border-radius: 50%; background: var(--idle); margin-right: 0.35rem; vertical-align: 0.05rem; }
.live.on::before { background: var(--good); }
.live.off::before { background: var(--warn); }
main { padding: 0.75rem 1rem 1.5rem; max-width: 110rem; margin: 0 auto; }
footer { padding: 0 1rem 1.5rem; text-align: center; }
h2 { font-size: 1.05rem; margin: 0; overflow-wrap: anywhere; }
h3 { font-size: 1rem; margin: 0; }
.muted { color: var(--muted); }
.small { font-size: 0.82rem; }
.good { color: var(--good); }
.bad { color: var(--bad); }
.summary { margin-bottom: 0.75rem; }
.summary p { margin: 0.35rem 0; }
.pills { list-style: none; display: flex; flex-wrap: wrap; gap: 0.4rem; padding: 0; margin: 0; }
.pill { border-radius: 999px; padding: 0.15rem 0.65rem; font-size: 0.88rem; background: var(--lvl-bg); color: var(--lvl); border: 1px solid var(--lvl); }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(21rem, 1fr)); gap: 0.75rem; align-items: start; }
.card, .node { background: var(--card); border: 1px solid var(--border); border-left: 4px solid var(--lvl, var(--border)); border-radius: 8px; padding: 0.7rem 0.85rem; min-width: 0; }
.card-head { display: flex; align-items: baseline; justify-content: space-between; gap: 0.5rem; }
.badge { font-size: 0.78rem; font-weight: 600; border-radius: 999px; padding: 0.1rem 0.55rem; white-space: nowrap; background: var(--lvl-bg, var(--idle-bg)); color: var(--lvl, var(--idle)); }
.lvl-healthy { --lvl: var(--good); --lvl-bg: var(--good-bg); }
.lvl-unhealthy, .lvl-needs_human, .lvl-orphaned { --lvl: var(--bad); --lvl-bg: var(--bad-bg); }
.lvl-remediating { --lvl: var(--warn); --lvl-bg: var(--warn-bg); }
.lvl-checking { --lvl: var(--info); --lvl-bg: var(--info-bg); }
.lvl-unknown, .lvl-never_deployed, .lvl-unmonitored { --lvl: var(--idle); --lvl-bg: var(--idle-bg); }
.lvl-needs_human .badge { background: var(--bad); color: var(--card); }
.desc { margin: 0.2rem 0 0.4rem; color: var(--muted); font-size: 0.9rem; }
.why { margin: 0.35rem 0; padding: 0.35rem 0.5rem; border-radius: 6px; background: var(--lvl-bg); color: var(--text); overflow-wrap: anywhere; font-size: 0.9rem; }
.why-more { margin: 0.2rem 0; font-size: 0.85rem; color: var(--muted); }
.perf { margin: 0.45rem 0 0.2rem; }
svg.chart { display: block; width: 100%; height: 40px; }
.chart-base { stroke: var(--base); stroke-width: 1; fill: none; }
.bar-ok, .bar-partial, .bar-down { fill: none; stroke-width: 2.4; }
.bar-ok { stroke: var(--bar); }
.bar-partial { stroke: var(--bar-partial); }
.bar-down { stroke: var(--bar-down); }
.axis { display: flex; justify-content: space-between; font-size: 0.72rem; color: var(--muted); }
.figures { display: flex; flex-wrap: wrap; gap: 0.2rem 0.9rem; margin: 0.25rem 0; font-size: 0.88rem; }
.checks { list-style: none; padding: 0; margin: 0.3rem 0; font-size: 0.86rem; overflow-wrap: anywhere; }
.checks li { padding: 0.05rem 0; }
.checks .good { color: var(--text); }
.checks .good .mark { color: var(--good); }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.15rem 0.7rem; margin: 0.4rem 0 0; font-size: 0.88rem; }
.facts dt { color: var(--muted); grid-column: 1; }
.facts dd { margin: 0; grid-column: 2; overflow-wrap: anywhere; min-width: 0; }
.facts ul { margin: 0.2rem 0 0; padding-left: 1.1rem; }
.pending { color: var(--warn); }
.pending li { color: var(--text); }
.tag { font-size: 0.75rem; border: 1px solid var(--border); border-radius: 4px; padding: 0 0.3rem; color: var(--muted); }
details { margin-top: 0.45rem; font-size: 0.86rem; }
summary { cursor: pointer; }
details ol { margin: 0.3rem 0 0; padding-left: 1.1rem; overflow-wrap: anywhere; }
details li { margin: 0.1rem 0; }
.nodes { margin-top: 1.25rem; }
.nodes > h2 { margin-bottom: 0.5rem; }
.node { --lvl: var(--info); }
.node.offline { --lvl: var(--bad); --lvl-bg: var(--bad-bg); }
svg.mem { display: block; width: 100%; height: 8px; margin: 0.5rem 0 0.2rem; }
.mem-used { fill: var(--mem-used); }
.mem-free { fill: var(--mem-free); }
.guests { list-style: none; padding: 0; margin: 0.3rem 0 0; font-size: 0.85rem; }
.vmid { font-variant-numeric: tabular-nums; color: var(--muted); }
.note { margin: 0.35rem 0; }
.login { max-width: 24rem; margin: 3rem auto; background: var(--card); border: 1px solid var(--border); border-radius: 8px; padding: 1rem 1.2rem; }
.login label { display: block; margin: 0.6rem 0 0.3rem; }
.login input { width: 100%; font: inherit; padding: 0.45rem 0.5rem; border: 1px solid var(--border); border-radius: 6px; background: var(--bg); color: var(--text); }
.login button { margin-top: 0.8rem; font: inherit; padding: 0.4rem 1rem; border-radius: 6px; border: 1px solid var(--border); background: var(--info); color: #fff; }
@media (max-width: 30rem) {
  main { padding: 0.6rem 0.6rem 1.2rem; }
  .top { padding: 0.6rem 0.75rem; }
  .grid { grid-template-columns: 1fr; }
  .facts { gap: 0.15rem 0.5rem; }
}
`;

// Plain ES2017 for any current browser; applies fragments from /events and keeps relative times fresh.
const JS = `"use strict";
(function () {
  var meta = document.querySelector('meta[name="homelab-stream"]');
  var live = document.getElementById("live");
  function setLive(text, cls) { if (live) { live.textContent = text; live.className = "live " + cls; } }
  function ago(iso) {
    var s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (s < 5) return "just now";
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }
  function refreshTimes(root) {
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) times[i].textContent = ago(times[i].getAttribute("datetime"));
  }
  function replace(id, html) {
    var old = document.getElementById(id);
    if (!old) { location.reload(); return; }
    var t = document.createElement("template");
    t.innerHTML = html;
    var next = t.content.firstElementChild;
    if (!next) return;
    var open = old.querySelectorAll("details[open][data-key]");
    for (var i = 0; i < open.length; i++) {
      var d = next.querySelector('details[data-key="' + open[i].getAttribute("data-key") + '"]');
      if (d) d.open = true;
    }
    old.replaceWith(next);
  }
  setInterval(function () { refreshTimes(document); }, 15000);
  if (!meta || !window.EventSource) { setLive("static", "off"); return; }
  var at = meta.getAttribute("content").split(":");
  var es = new EventSource("events?boot=" + encodeURIComponent(at[0]) + "&since=" + encodeURIComponent(at[1]));
  es.addEventListener("open", function () { setLive("live", "on"); });
  es.addEventListener("error", function () { setLive("reconnecting…", "off"); });
  es.addEventListener("html", function (e) {
    var m = JSON.parse(e.data);
    replace(m.id, m.html);
    document.documentElement.setAttribute("data-version", e.lastEventId);
  });
  es.addEventListener("reload", function () { es.close(); location.reload(); });
})();
`;

const ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#1a7f37"/><path d="M3 9l3 3 7-8" stroke="#fff" stroke-width="2" fill="none"/></svg>`;

/** One asset: its URL path (content-hashed), type and bytes. */
export interface Asset {
  path: string;
  type: string;
  body: Buffer;
  etag: string;
}

function asset(name: string, ext: string, type: string, text: string): Asset {
  const body = Buffer.from(text, "utf8");
  const hash = createHash("sha256").update(body).digest("hex").slice(0, 12);
  return { path: `assets/${name}.${hash}.${ext}`, type, body, etag: `"${hash}"` };
}

/** The page's assets. */
export const ASSETS = {
  css: asset("style", "css", "text/css; charset=utf-8", CSS),
  js: asset("app", "js", "text/javascript; charset=utf-8", JS),
  icon: asset("icon", "svg", "image/svg+xml", ICON),
} as const;

/** An asset by its URL path (without the leading slash); undefined for anything else. */
export function assetAt(path: string): Asset | undefined {
  return Object.values(ASSETS).find((a) => a.path === path);
}
