// The HTML pages a visitor can meet: landing, waiting (live: its one script, with a per-response
// nonce, keeps a stream open), session ended, no session, unknown app, instance not answering,
// over a limit. Everything interpolated goes through esc().

import type { LineStatus } from '../pool/api.js';

/** Escapes text for HTML element content and double-quoted attributes. */
export function esc(s: unknown): string {
  return String(s).replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}a.button,button{display:inline-block;padding:.5rem 1rem;border-radius:.4rem;background:#2a6df4;color:#fff;text-decoration:none;border:0;font:inherit;cursor:pointer}
.muted{color:#666;font-size:.9rem}ul{padding-left:1.2rem}code{background:#f3f3f3;padding:0 .2rem}`;

export interface PageOptions {
  title: string;
  /** Already-escaped HTML body. */
  body: string;
  /** Reload to this URL after this many seconds. */
  refresh?: { seconds: number; url: string };
  /** The same, only for browsers without JavaScript (in <noscript>). */
  noscriptRefresh?: { seconds: number; url: string };
  /** One inline script, allowed by the response's CSP nonce. */
  script?: { nonce: string; code: string };
}

export function page(o: PageOptions): string {
  const meta = (r: { seconds: number; url: string }): string => `<meta http-equiv="refresh" content="${r.seconds};url=${esc(r.url)}">`;
  const refresh = (o.refresh ? `\n${meta(o.refresh)}` : '') + (o.noscriptRefresh ? `\n<noscript>${meta(o.noscriptRefresh)}</noscript>` : '');
  const script = o.script ? `\n<script nonce="${esc(o.script.nonce)}">${o.script.code}</script>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">${refresh}
<title>${esc(o.title)}</title><style>${STYLE}</style></head>
<body>
<h1>${esc(o.title)}</h1>
${o.body}${script}
</body></html>
`;
}

export function landingPage(apps: readonly { name: string; href: string }[]): string {
  const items = apps.map((a) => `<li><a href="${esc(a.href)}">${esc(a.name)}</a></li>`).join('\n');
  return page({ title: 'Notebooks', body: `<p>Choose an app; each visitor gets an instance of their own.</p>\n<ul>\n${items}\n</ul>` });
}

/** "about 40 seconds", "about 12 minutes": rough on purpose. */
export function roughDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 10) return 'a few seconds';
  if (s < 60) return `about ${Math.round(s / 5) * 5} seconds`;
  const m = Math.round(s / 60);
  if (m < 90) return m === 1 ? 'about a minute' : `about ${m} minutes`;
  const h = Math.round(m / 30) / 2;
  return `about ${h} hours`;
}

export interface WaitingText {
  headline: string;
  place: string;
  detail: string;
}

/** What the waiting page says, for the page itself and for each update its stream brings. */
export function waitingText(app: string, l: LineStatus): WaitingText {
  const place = l.position <= 1 ? 'You are next in line.' : `You are number ${l.position} in line.`;
  const ms = l.estimatedWaitMs;
  switch (l.reason) {
    case 'starting':
      return {
        headline: `Every instance of ${app} is taken, so a new one is being started for you.`,
        place,
        detail: ms === undefined ? 'It is starting now.' : `It should be ready in ${roughDuration(ms)}.`,
      };
    case 'full':
      return {
        headline: `The class is full: all ${l.max} instances of ${app} are in use.`,
        place,
        detail:
          ms === undefined
            ? 'A place frees up when one of the sessions ends.'
            : `A place should free up in ${roughDuration(ms)}, when the earliest session ends.`,
      };
    case 'unused-claims':
      return {
        headline: `Several instances of ${app} opened from your network have not been used yet.`,
        place,
        detail: `You get yours as soon as one of them is used or given back${ms === undefined ? '' : `, within ${roughDuration(ms)}`}.`,
      };
    case 'throttled':
      return { headline: `Many visitors are arriving at ${app} at once.`, place, detail: `You get in within ${roughDuration(ms ?? 0)}.` };
    case 'failing':
      return {
        headline: `Instances of ${app} fail to start right now.`,
        place,
        detail: 'You keep your place and get in as soon as one starts; the administrators can see why.',
      };
  }
}

/** What a waiting page shows before it leaves for /<app>/ because its stream holds nothing (any more). */
export function waitingGoneText(app: string, why: 'lapsed' | 'stopped' | 'too-many' | 'error', limit?: number): WaitingText {
  const headline = {
    lapsed: 'This page no longer holds a place in line.',
    stopped: `${app} is not taking new visitors right now.`,
    'too-many': `${limit ?? 'Many'} visitors from your network address are already waiting for ${app}.`,
    error: 'Something went wrong while waiting.',
  }[why];
  return { headline, place: '', detail: `Joining the line for ${app} again…` };
}

/**
 * The waiting page's script: keeps the place with a live stream (the place lives as long as it is
 * open), shows each update, and goes where the stream says the moment an instance is ready. No
 * EventSource, or a stream that cannot open: the held-request URL (what browsers without JavaScript
 * reach through the <noscript> refresh).
 */
const WAITING_SCRIPT = `(function () {
  var el = document.getElementById('wp');
  var wait = el.getAttribute('data-wait'), root = el.getAttribute('data-root');
  if (!window.EventSource) { location.replace(wait); return; }
  var es = new EventSource(wait);
  var show = function (d) {
    ['headline', 'place', 'detail'].forEach(function (k) {
      var n = document.getElementById('wp-' + k);
      if (n && typeof d[k] === 'string') n.textContent = d[k];
    });
  };
  var go = function (url, ms) { es.close(); setTimeout(function () { location.replace(url); }, ms || 0); };
  es.addEventListener('line', function (e) { show(JSON.parse(e.data)); });
  es.addEventListener('ready', function (e) { go(JSON.parse(e.data).url); });
  es.addEventListener('gone', function (e) { var d = JSON.parse(e.data); show(d); go(d.url, d.afterMs); });
  es.onerror = function () { if (es.readyState === 2) go(root, 2000); };
})();`;

/**
 * The waiting page. Without JavaScript its <noscript> refresh goes at once to the held-request URL:
 * the browser keeps showing this page while that navigation waits in line, and lands in the app
 * when it is answered (or gets this page again, with a new ticket, after queue.hold).
 */
export function waitingPage(o: { app: string; line: LineStatus; waitUrl: string; rootUrl: string; nonce: string }): string {
  const t = waitingText(o.app, o.line);
  return page({
    title: `Waiting for ${o.app}`,
    noscriptRefresh: { seconds: 0, url: o.waitUrl },
    script: { nonce: o.nonce, code: WAITING_SCRIPT },
    body: `<main id="wp" data-wait="${esc(o.waitUrl)}" data-root="${esc(o.rootUrl)}">
<p id="wp-headline">${esc(t.headline)}</p>
<p><b id="wp-place">${esc(t.place)}</b></p>
<p id="wp-detail">${esc(t.detail)}</p>
<p class="muted">Keep this page open: it takes you in by itself the moment an instance is ready for you. Closing it gives up your place.</p>
</main>`,
  });
}

/** Over a per-address limit of the waiting line: says when to try again, and tries then by itself. */
export function limitedPage(o: { title: string; message: string; retrySeconds: number; retryUrl: string }): string {
  return page({
    title: o.title,
    refresh: { seconds: o.retrySeconds, url: o.retryUrl },
    body: `<p>${esc(o.message)}</p>\n<p class="muted">This page tries again by itself in ${esc(o.retrySeconds)} seconds.</p>`,
  });
}

export function freshButton(app: string): string {
  return `<p><a class="button" href="${esc(`/${app}/?fresh=1`)}">Start a fresh instance of ${esc(app)}</a></p>`;
}

export function noSessionPage(o: { app: string; message: string }): string {
  return page({ title: 'No session here', body: `<p>${esc(o.message)}</p>\n${freshButton(o.app)}` });
}

export function endedPage(o: { app: string; message: string }): string {
  return page({
    title: 'This session has ended',
    body: `<p>${esc(o.message)}</p>\n<p class="muted">Unsaved work in that instance is gone.</p>\n${freshButton(o.app)}`,
  });
}

export function confirmFreshPage(app: string): string {
  return page({
    title: `Start a fresh ${app}?`,
    body: `<p>Your current instance of <b>${esc(app)}</b> will be ended and you get a new one.</p>
${freshButton(app)}
<p><a href="${esc(`/${app}/`)}">Back to my current instance</a></p>`,
  });
}

export function unknownAppPage(o: { name: string; apps: readonly string[] }): string {
  const items = o.apps.map((a) => `<li><a href="/${esc(a)}/">${esc(a)}</a></li>`).join('\n');
  return page({ title: 'Not found', body: `<p>There is no app called <code>${esc(o.name)}</code> here. These are the apps:</p>\n<ul>\n${items}\n</ul>` });
}

export function upstreamDownPage(o: { app: string; message: string }): string {
  return page({
    title: 'Your instance is not answering',
    body: `<p>${esc(o.message)}</p>\n<p>Try again in a moment. If it keeps failing, start a fresh instance.</p>\n${freshButton(o.app)}`,
  });
}

export function messagePage(title: string, message: string): string {
  return page({ title, body: `<p>${esc(message)}</p>` });
}
