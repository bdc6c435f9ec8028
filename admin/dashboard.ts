// The dashboard's page and style, and its script: admin/dashboard-client.ts, compiled by the same
// tsc run as everything else and read from beside this file. No build step of its own, no CDN, no
// framework: it works offline. The page holds no data; the script fetches it with the token.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

let script: string | undefined;

/** The compiled client script (its source-map comment dropped: the map is not served). */
export function dashboardScript(): string {
  script ??= readFileSync(fileURLToPath(new URL('./dashboard-client.js', import.meta.url)), 'utf8').replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
  return script;
}

export function dashboardHtml(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>warmpool admin</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="dashboard.css">
<script type="module" src="dashboard.js"></script>
</head>
<body>
<header>
  <h1>warmpool <span class="sub">admin</span></h1>
  <span id="conn" class="conn off" title="live updates">offline</span>
  <button id="signout" type="button" hidden>Sign out</button>
</header>
<div id="notice" role="status" hidden></div>
<section id="signin" hidden>
  <form id="signin-form">
    <label for="token">Admin token</label>
    <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" placeholder="WARMPOOL_ADMIN_TOKEN" required>
    <button type="submit">Sign in</button>
    <p class="hint">Kept in this tab only (sessionStorage) and sent as an Authorization header.</p>
    <p id="signin-error" class="error" hidden></p>
  </form>
</section>
<main id="main" hidden>
  <section><h2>Apps</h2><div id="apps"></div></section>
  <section><h2>Live sessions <span id="live-count" class="count"></span></h2>
    <table id="sessions"><thead><tr><th>session</th><th>app</th><th>claimed</th><th>last active</th><th>ends</th><th>conns</th><th>in / out</th><th>msgs</th><th></th></tr></thead><tbody></tbody></table>
    <p id="no-sessions" class="empty">No live sessions.</p>
  </section>
  <section class="two">
    <div><h2>Recent ends</h2>
      <table id="ends"><thead><tr><th>when</th><th>session</th><th>app</th><th>reason</th><th>lasted</th><th>in / out</th></tr></thead><tbody></tbody></table>
      <p id="no-ends" class="empty">None yet.</p>
    </div>
    <div><h2>Failures</h2><ul id="failures"></ul><p id="no-failures" class="empty">None.</p></div>
  </section>
</main>
</body>
</html>
`;
}

export const DASHBOARD_CSS = `
:root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --mute: #6b7385; --line: #dde1e8; --ready: #2e9d5b; --starting: #e3a008; --claimed: #3b6fd8; --bad: #c8322f; --warm: #1d2330; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; align-items: center; gap: 12px; padding: 10px 20px; background: var(--ink); color: #fff; }
header h1 { font-size: 18px; margin: 0; flex: 1; }
header .sub { font-weight: 400; opacity: .7; }
.conn { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #555; }
.conn.on { background: var(--ready); }
.conn.off { background: var(--bad); }
main, #signin { padding: 16px 20px; max-width: 1200px; margin: 0 auto; }
h2 { font-size: 15px; margin: 18px 0 8px; }
.count { color: var(--mute); font-weight: 400; }
#notice { position: fixed; top: 56px; right: 20px; max-width: 480px; padding: 8px 12px; border-radius: 6px; background: #fff3cd; box-shadow: 0 2px 8px rgba(0,0,0,.15); z-index: 1; }
#notice.error { background: #fde2e1; }
form { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px; max-width: 460px; display: grid; gap: 8px; }
input { font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; }
button { font: inherit; padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px; background: #fff; cursor: pointer; }
button:hover { background: #eef1f6; }
button.danger { color: var(--bad); border-color: #f0c2c1; }
header button { background: transparent; color: #fff; border-color: #666; }
.hint, .empty { color: var(--mute); font-size: 12px; margin: 4px 0; }
.error { color: var(--bad); }
#apps { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: 12px; }
.app { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px; }
.app .top { display: flex; align-items: baseline; gap: 8px; }
.app .name { font-weight: 600; font-size: 16px; }
.badge { font-size: 11px; padding: 1px 7px; border-radius: 9px; background: #e8ecf2; color: var(--mute); }
.badge.ok { background: #daf2e3; color: var(--ready); }
.badge.warming { background: #fcefc9; color: #8a6100; }
.badge.full, .badge.draining { background: #e1e8fa; color: var(--claimed); }
.badge.failing { background: #fde2e1; color: var(--bad); }
.counts { margin: 6px 0; }
.counts b { font-variant-numeric: tabular-nums; }
.k-ready { color: var(--ready); } .k-starting { color: #a77500; } .k-claimed { color: var(--claimed); }
svg.bar, svg.spark { display: block; width: 100%; }
.legend { color: var(--mute); font-size: 11px; display: flex; justify-content: space-between; gap: 8px; margin-top: 6px; white-space: nowrap; }
.lasterror { color: var(--bad); font-size: 12px; word-break: break-word; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden; }
.actions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; align-items: center; }
.actions input { width: 56px; padding: 3px 5px; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); font-variant-numeric: tabular-nums; white-space: nowrap; }
th { font-size: 12px; color: var(--mute); font-weight: 500; }
td.id { font-family: ui-monospace, monospace; font-size: 12px; }
tr.idle td { color: var(--mute); }
.two { display: grid; grid-template-columns: 3fr 2fr; gap: 16px; }
#failures { margin: 0; padding: 0; list-style: none; }
#failures li { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 6px 8px; margin-bottom: 6px; font-size: 12px; word-break: break-word; }
@media (max-width: 800px) { .two { grid-template-columns: 1fr; } }
`;
