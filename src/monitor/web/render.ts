/**
 * The status page as HTML, from the status model: a summary, one card per
 * service, the nodes. Each part is a fragment with an id, so live updates
 * replace just that part (the hub sends changed fragments over server-sent
 * events). Pure: model and time in, strings out. Every text from the model
 * is escaped; the page has no inline script or style (its CSP forbids them),
 * and charts are inline SVG drawn here.
 */
import type { PendingView, PlacementView, ServiceView, StatusModel } from "../../status/model.ts";
import { LEVEL_LABELS, LEVELS } from "../../status/model.ts";
import type { HistoryEntry, UptimeView } from "../../status/series.ts";
import { BUCKET_MS, BUCKETS } from "../../status/series.ts";

/** HTML-escapes text (also for attribute values). Pure. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);
}

/** "12 s ago", "3 min ago", "5 h ago", "2 days ago"; the page's script keeps these current. Pure. */
export function ago(iso: string, now: number): string {
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 5) return "just now";
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129_600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
}

function time(iso: string, now: number): string {
  return `<time datetime="${esc(iso)}" title="${esc(iso.replace("T", " ").replace(/\.\d+Z$/, "Z"))}">${esc(ago(iso, now))}</time>`;
}

/** Bytes as GiB or MiB. Pure. */
export function bytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  return `${Math.round(n / 1024 ** 2)} MiB`;
}

function ms(v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${v} ms`;
}

/** `debian-12-standard_12.7-1` from `local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`. Pure. */
export function shortTemplate(volid: string): string {
  return volid.slice(volid.indexOf("/") + 1).replace(/\.tar\.(zst|gz|xz)$/, "").replace(/_(amd64|arm64|i386)$/, "");
}

/** The fragment id of a service's card. */
export function cardId(service: string): string {
  return `svc-${service}`;
}

/**
 * Response time and uptime over 24 h as an inline SVG: one bar per 15
 * minutes, its height the mean response time of the passing checks, its
 * colour whether every check passed (ok), some failed (partial) or all did
 * (down, full height). Pure.
 */
export function uptimeChart(u: UptimeView | null, now: number): string {
  const W = BUCKETS * 3;
  const H = 40;
  if (!u) return `<svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="no check results yet"><title>no check results yet</title><path class="chart-base" d="M0 ${H - 0.5}H${W}"/></svg>`;
  const newest = Math.floor(now / BUCKET_MS);
  const top = Math.max(1, ...u.buckets.map((b) => b.avgMs ?? 0));
  const paths: Record<"ok" | "partial" | "down", string[]> = { ok: [], partial: [], down: [] };
  for (const b of u.buckets) {
    const i = BUCKETS - 1 - (newest - Math.floor(Date.parse(b.start) / BUCKET_MS));
    if (i < 0 || i >= BUCKETS) continue;
    const cls = b.ok === b.total ? "ok" : b.ok === 0 ? "down" : "partial";
    const h = cls === "down" ? H : Math.max(2, Math.round(((b.avgMs ?? 0) / top) * (H - 4)));
    // One stroked line per bar (2.4 wide, centred): a dozen bytes each, 96 bars a chart, 200 charts a page.
    paths[cls].push(`M${i * 3 + 1.2} ${H}V${H - h}`);
  }
  const label = `uptime ${pct(u.ratio)} over the last ${u.windowHours} h${u.avgMs !== null ? `, response time ${ms(u.avgMs)} on average, at most ${ms(top)} in a ${u.bucketMinutes}-minute slot` : ""}`;
  const bars = (["ok", "partial", "down"] as const).filter((k) => paths[k].length > 0).map((k) => `<path class="bar-${k}" d="${paths[k].join("")}"/>`);
  return `<svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="${esc(label)}"><title>${esc(label)}</title><path class="chart-base" d="M0 ${H - 0.5}H${W}"/>${bars.join("")}</svg>`;
}

function pct(ratio: number | null): string {
  if (ratio === null) return "–";
  const p = ratio * 100;
  return `${p === 100 || p === 0 ? p.toFixed(0) : p >= 99.95 ? "99.9" : p.toFixed(1)}%`;
}

function placementText(p: PlacementView): string {
  const parts = [p.node ?? "node ?", p.vmid !== null ? `CT ${p.vmid}` : "", p.address ?? "no address yet", p.template ? shortTemplate(p.template) : ""].filter((x) => x !== "");
  return `${parts.map(esc).join(" · ")}${p.protect ? ' <span class="tag">protected</span>' : ""}`;
}

function deployText(s: ServiceView, now: number): string {
  const d = s.lastDeploy;
  if (!d) return "";
  const what: string[] = [];
  if (d.kind !== null) what.push(`${d.kind}${d.result !== null ? ` ${d.result}` : ""}`);
  if (d.changed && d.changed.length > 0) what.push(d.changed.map((c) => `${c.resource} ${c.change}`).join(", "));
  else if (d.changed) what.push("no resource changed");
  const deleted = d.counts?.["delete"] ?? 0;
  if (deleted > 0) what.push(`${deleted} deleted`);
  const failed = d.result === "failed" ? ' class="bad"' : "";
  return `<dt>Deployed</dt><dd${failed}>${time(d.at, now)}${what.length > 0 ? ` · ${what.map(esc).join(" · ")}` : ""}</dd>`;
}

function pendingText(p: PendingView | null, now: number): string {
  if (!p) return "";
  const items = p.changes.map((c) => {
    const why = [...c.inputs, ...c.summary];
    return `<li><b>${esc(c.resource)}</b>: ${esc(c.kind)}${c.replaces && c.kind !== "replace" ? " (replaced)" : ""}${why.length > 0 ? ` — ${why.map(esc).join("; ")}` : ""}</li>`;
  });
  return `<dt>Pending</dt><dd class="pending">${p.status === "blocked" ? "a guard would refuse; " : ""}previewed ${time(p.at, now)}, not deployed yet<ul>${items.join("")}</ul></dd>`;
}

function historyLine(h: HistoryEntry, now: number): string {
  if (h.kind === "action") {
    const verb = h.phase === "start" ? "started" : h.phase === "ok" ? "done" : h.phase;
    const cls = h.phase === "failed" ? "bad" : h.phase === "ok" ? "good" : "";
    return `<li class="${cls}">${time(h.at, now)} <b>${esc(h.action)} ${esc(verb)}</b>${h.detail ? `: ${esc(h.detail)}` : ""}</li>`;
  }
  const cls = h.to === "healthy" ? "good" : "bad";
  return `<li class="${cls}">${time(h.at, now)} <b>${esc(h.to.replace("_", " "))}</b>: ${esc(h.reason)}</li>`;
}

/** One service's card. Pure. */
export function serviceCard(s: ServiceView, now: number): string {
  const out: string[] = [];
  out.push(`<article class="card lvl-${s.level}" id="${esc(cardId(s.service))}" data-level="${s.level}">`);
  out.push(`<header class="card-head"><h2>${esc(s.service)}</h2><span class="badge">${esc(s.label)}</span></header>`);
  if (s.description) out.push(`<p class="desc">${esc(s.description)}</p>`);
  if (s.level !== "healthy") {
    const lines = s.failing.length > 0 ? s.failing.map((f) => `<b>${esc(f.check)}</b>: ${esc(f.detail)}`) : s.reason ? [esc(s.reason)] : [];
    const since = s.since && s.level !== "never_deployed" && s.level !== "unmonitored" ? `${lines.length > 0 ? "<br>" : ""}<span class="muted">${esc(s.label.toLowerCase())} since ${time(s.since, now)}</span>` : "";
    if (lines.length > 0 || since) out.push(`<p class="why">${lines.join("<br>")}${since}</p>`);
    if (s.failing.length > 0 && s.reason && s.level !== "unhealthy") out.push(`<p class="why-more">${esc(s.reason)}</p>`);
  }
  if (s.checks.length > 0 && s.level !== "never_deployed" && s.level !== "orphaned") {
    const u = s.uptime;
    out.push(`<div class="perf">${uptimeChart(u, now)}<div class="axis"><span>24 h ago</span><span>now</span></div>`);
    out.push(
      `<p class="figures"><span><b>${pct(u?.ratio ?? null)}</b> up</span><span><b>${u?.lastMs != null ? ms(u.lastMs) : "–"}</b> last</span><span><b>${u?.avgMs != null ? ms(u.avgMs) : "–"}</b> avg</span>${u?.since ? `<span class="muted">since ${time(u.since, now)}</span>` : ""}</p></div>`,
    );
    out.push(
      `<ul class="checks">${s.checks.map((c) => `<li class="${c.ok === true ? "good" : c.ok === false ? "bad" : "muted"}"><span class="mark" aria-hidden="true">${c.ok === true ? "✓" : c.ok === false ? "✗" : "·"}</span> ${esc(c.label)}${c.ok === null ? ` — ${esc(c.detail)}` : ""}</li>`).join("")}</ul>`,
    );
  }
  const facts: string[] = [];
  if (s.placement.length > 0) facts.push(`<dt>Runs on</dt>${s.placement.map((p) => `<dd>${s.placement.length > 1 ? `<b>${esc(p.resource)}</b> ` : ""}${placementText(p)}</dd>`).join("")}`);
  if (s.links.length > 0) facts.push(`<dt>Open</dt><dd>${s.links.map((l) => `<a href="${esc(l)}" rel="noopener noreferrer" target="_blank">${esc(l)}</a>`).join(" ")}</dd>`);
  facts.push(deployText(s, now));
  facts.push(pendingText(s.pending, now));
  if (s.lock) facts.push(`<dt>Locked</dt><dd>${esc(s.lock)}</dd>`);
  const f = facts.filter((x) => x !== "");
  if (f.length > 0) out.push(`<dl class="facts">${f.join("")}</dl>`);
  const r = s.remediation;
  if (r.recent.length > 0 || r.last) {
    const head = r.last ? `last: ${esc(r.last.action)} ${esc(r.last.outcome)} ${time(r.last.at, now)}${r.lastHour > 0 ? ` · ${r.lastHour} in the last hour` : ""}` : `${r.recent.length} event(s)`;
    out.push(`<details class="history" data-key="history"><summary>History <span class="muted">(${head})</span></summary><ol>${r.recent.map((h) => historyLine(h, now)).join("")}</ol></details>`);
  }
  out.push("</article>");
  return out.join("");
}

/** The summary: counts per level and the services that need attention. Pure. */
export function summarySection(m: StatusModel): string {
  const pills = LEVELS.filter((l) => m.summary[l] > 0).map((l) => `<li class="pill lvl-${l}"><b>${m.summary[l]}</b> ${esc(LEVEL_LABELS[l].toLowerCase())}</li>`);
  const attention = m.services.filter((s) => s.level === "unhealthy" || s.level === "needs_human" || s.level === "remediating");
  const notes: string[] = [];
  if (m.deployment.error) notes.push(`<p class="note bad">Cannot read the deployment: ${esc(m.deployment.error)}</p>`);
  else if (!m.deployment.read) notes.push(`<p class="note muted">Reading the deployment…</p>`);
  const problems =
    attention.length > 0
      ? `<p class="attention">Needs attention: ${attention.map((s) => `<a href="#${esc(cardId(s.service))}">${esc(s.service)}</a> <span class="muted">(${esc(s.label.toLowerCase())})</span>`).join(", ")}</p>`
      : m.services.length > 0 && m.summary.healthy === m.services.filter((s) => s.level !== "unmonitored" && s.level !== "never_deployed").length && m.summary.healthy > 0
        ? `<p class="attention good">Everything monitored is healthy.</p>`
        : "";
  return `<section id="summary" class="summary"><ul class="pills">${pills.join("")}</ul>${problems}${notes.join("")}<p class="muted small">${m.summary.total} service(s)</p></section>`;
}

/** The nodes: memory used and free, guests. Pure. */
export function nodesSection(m: StatusModel, now: number): string {
  const n = m.nodes;
  if (!n) return `<section id="nodes" class="nodes"></section>`;
  const head = `<h2>Nodes <span class="muted small">read ${time(n.at, now)}</span></h2>`;
  if (n.error) return `<section id="nodes" class="nodes">${head}<p class="note bad">Cannot read the cluster: ${esc(n.error)}</p></section>`;
  const cards = n.list.map((node) => {
    const used = node.memTotal > 0 ? node.memUsed / node.memTotal : 0;
    const w = Math.round(used * 1000) / 10;
    const guests = node.guests.map(
      (g) =>
        `<li class="${g.status === "running" ? "" : "muted"}"><span class="vmid">${g.type === "lxc" ? "CT" : "VM"} ${g.vmid}</span> ${esc(g.name ?? "")}${g.service ? ` <a href="#${esc(cardId(g.service))}">${esc(g.service)}</a>` : ""} <span class="muted">${esc(g.status)}</span></li>`,
    );
    return [
      `<article class="node ${node.online ? "" : "offline"}"><header class="card-head"><h3>${esc(node.name)}</h3><span class="badge">${node.online ? "online" : "offline"}</span></header>`,
      `<svg class="mem" viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label="memory ${w}% used"><rect class="mem-free" x="0" y="0" width="100" height="6" rx="1"/><rect class="mem-used" x="0" y="0" width="${w}" height="6" rx="1"/></svg>`,
      `<p class="figures"><span><b>${bytes(node.memUsed)}</b> used</span><span><b>${bytes(node.memFree)}</b> free</span><span class="muted">of ${bytes(node.memTotal)}</span></p>`,
      `<p class="muted small">${node.guests.length} guest(s), ${node.guests.filter((g) => g.status === "running").length} running</p>`,
      guests.length > 0 ? `<ul class="guests">${guests.join("")}</ul>` : "",
      `</article>`,
    ].join("");
  });
  return `<section id="nodes" class="nodes">${head}<div class="grid">${cards.join("")}</div></section>`;
}

/** A part of the page that is replaced as a whole when it changes. */
export interface Fragment {
  id: string;
  html: string;
}

/** The page's fragments in order: summary, one card per service, nodes. Pure. */
export function fragmentsOf(m: StatusModel, now: number): Fragment[] {
  return [{ id: "summary", html: summarySection(m) }, ...m.services.map((s) => ({ id: cardId(s.service), html: serviceCard(s, now) })), { id: "nodes", html: nodesSection(m, now) }];
}

/** What the page links to and how it resumes its live stream. */
export interface PageOptions {
  environment: string;
  /** Asset URLs (with content hashes). */
  css: string;
  js: string;
  icon: string;
  /** The stream's boot id and the version the page shows. */
  boot: string;
  version: number;
}

/** The whole page around its fragments. Pure. */
export function renderPage(fragments: readonly Fragment[], o: PageOptions): string {
  const summary = fragments.find((f) => f.id === "summary")?.html ?? "";
  const nodes = fragments.find((f) => f.id === "nodes")?.html ?? "";
  const cards = fragments.filter((f) => f.id !== "summary" && f.id !== "nodes").map((f) => f.html);
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="referrer" content="no-referrer">',
    `<meta name="homelab-stream" content="${esc(o.boot)}:${o.version}">`,
    `<title>homelab · ${esc(o.environment)}</title>`,
    `<link rel="icon" href="${esc(o.icon)}" type="image/svg+xml">`,
    `<link rel="stylesheet" href="${esc(o.css)}">`,
    `<script src="${esc(o.js)}" defer></script>`,
    "</head><body>",
    `<header class="top"><h1>homelab <span class="env">${esc(o.environment)}</span></h1><span id="live" class="live" aria-live="polite">connecting…</span></header>`,
    "<main>",
    summary,
    `<section id="services" class="grid services" aria-label="services">${cards.join("")}</section>`,
    nodes,
    "</main>",
    `<footer class="muted small">A read-only view of <code>homelab monitor</code>; exact times (UTC) on hover.</footer>`,
    "</body></html>",
    "",
  ].join("\n");
}
