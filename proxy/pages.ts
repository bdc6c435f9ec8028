// The HTML pages a visitor can meet: landing, waiting (retries itself), session ended, no session,
// unknown app, instance not answering. Script-free; everything interpolated goes through esc().

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
  /** Reload to this URL after this many seconds (the waiting page). */
  refresh?: { seconds: number; url: string };
}

export function page(o: PageOptions): string {
  const refresh = o.refresh ? `\n<meta http-equiv="refresh" content="${o.refresh.seconds};url=${esc(o.refresh.url)}">` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">${refresh}
<title>${esc(o.title)}</title><style>${STYLE}</style></head>
<body>
<h1>${esc(o.title)}</h1>
${o.body}
</body></html>
`;
}

export function landingPage(apps: readonly { name: string; href: string }[]): string {
  const items = apps.map((a) => `<li><a href="${esc(a.href)}">${esc(a.name)}</a></li>`).join('\n');
  return page({ title: 'Notebooks', body: `<p>Choose an app; each visitor gets an instance of their own.</p>\n<ul>\n${items}\n</ul>` });
}

export function waitingPage(o: { app: string; position: number; retryUrl: string; retrySeconds: number }): string {
  const place = o.position <= 1 ? 'You are next in line.' : `You are number ${o.position} in line.`;
  return page({
    title: `Starting ${o.app}…`,
    refresh: { seconds: o.retrySeconds, url: o.retryUrl },
    body: `<p>All instances of <b>${esc(o.app)}</b> are in use; a new one is being prepared for you.</p>
<p id="position"><b>${esc(place)}</b></p>
<p class="muted">This page checks again every ${esc(o.retrySeconds)} seconds and keeps your place. <a href="${esc(o.retryUrl)}">Check now</a></p>`,
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
