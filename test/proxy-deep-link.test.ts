// proxy/deep-link.ts: where the entry sends a new visitor when the instance's deep link answered a
// redirect (an untrusted Location). Pluto's relative ./edit?id= lands under /<app>/; the instance's
// own origin and strip mode's absolute paths are mapped as a relayed Location is; anything that leaves
// the app (another origin, //host, ../ out of the prefix, a backslash trick), carries credentials or
// gives the secret away falls back to the deep link. A property: whatever the Location, the answer is
// under /<app>/, can go on the wire as a header value, and never contains the secret.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { SessionTarget } from '../pool/api.js';
import { deepLinkUrl, firstLocation } from '../proxy/deep-link.js';
import { appConfig, newTraffic } from './helpers/fake-pool.js';

const SECRET = 'Zq7secretXy9';
const strip = appConfig('demo', {
  deepLink: '/open?path=webapp.jl',
  resolveDeepLink: true,
  secret: { env: 'S', inject: { query: 'secret', headerFormat: '{secret}' } },
});
const baseUrl = appConfig('lab', { deepLink: '/tree', resolveDeepLink: true, prefix: { mode: 'base-url', env: 'BASE_URL' } });

function target(deepLinkRedirect: string | undefined, secret: string | undefined = SECRET): SessionTarget {
  return { session: 's', app: 'demo', instanceId: 'i', host: '127.0.0.1', port: 41234, secret, deepLinkRedirect, claimedAt: 0, traffic: newTraffic() };
}

test("a safe redirect: Pluto's relative ./edit?id=, an absolute path, the instance's own origin, base-url mode", () => {
  assert.equal(firstLocation(strip, target('./edit?id=6b1e7f2a')), '/demo/edit?id=6b1e7f2a');
  assert.equal(firstLocation(strip, target('edit?id=6b1e7f2a')), '/demo/edit?id=6b1e7f2a');
  assert.equal(firstLocation(strip, target('/edit?id=1#top')), '/demo/edit?id=1#top', "strip mode: the instance's /x is the public /demo/x");
  assert.equal(firstLocation(strip, target('http://127.0.0.1:41234/edit?id=1')), '/demo/edit?id=1', "the instance's own origin is dropped");
  assert.equal(firstLocation(strip, target('./a/../edit?id=1')), '/demo/edit?id=1', 'dot segments resolved');
  assert.equal(firstLocation(baseUrl, target('/lab/lab/tree', undefined)), '/lab/lab/tree');
  assert.equal(firstLocation(baseUrl, target('lab', undefined)), '/lab/lab');
});

test('a secret the instance echoes in the query is removed, as from a relayed Location', () => {
  assert.equal(firstLocation(strip, target(`./edit?id=1&secret=${SECRET}`)), '/demo/edit?id=1');
});

test('anything that leaves the app, carries credentials or gives the secret away: the deep link', () => {
  const deep = deepLinkUrl(strip);
  assert.equal(deep, '/demo/open?path=webapp.jl');
  for (const loc of [
    undefined,
    'http://evil.example/edit?id=1',
    '//evil.example/edit',
    'https://127.0.0.1:41234/edit',
    'http://127.0.0.1:41235/edit',
    'http://user:pw@127.0.0.1:41234/edit',
    'javascript:alert(1)',
    'data:text/html,x',
    '../../admin/',
    '/../other/x',
    `./edit?id=${SECRET}`,
    `./${encodeURIComponent(SECRET)}/x`,
    `./x?token=${Buffer.from(SECRET).toString('base64')}`,
  ]) {
    assert.equal(firstLocation(strip, target(loc)), deep, String(loc));
  }
  assert.equal(firstLocation(baseUrl, target('/other/x', undefined)), '/lab/tree', 'base-url mode: outside /lab/');
  assert.equal(firstLocation(baseUrl, target('/\\evil.example/lab/', undefined)), '/lab/tree', 'a backslash a browser reads as //host');
  assert.equal(
    firstLocation(strip, target('/\\evil.example/edit')),
    '/demo//evil.example/edit',
    'strip mode: the instance path /\\x is the public /demo/\\x, a path on this origin',
  );
  assert.equal(firstLocation(baseUrl, target('/labx', undefined)), '/lab/tree', 'a prefix of the name is not the app');
});

test('property: whatever the Location, the answer stays under /<app>/, can be a header value, and never holds the secret', () => {
  const pieces = fc.constantFrom(
    '/',
    '//',
    '\\',
    '..',
    '.',
    '?',
    '#',
    '%2e',
    '%2F',
    '@',
    ':',
    'demo',
    'edit',
    'http:',
    '127.0.0.1:41234',
    SECRET,
    'secret=',
    '&',
    ' ',
    '\t',
    '\u00e9',
    '\u0000',
  );
  const locations = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary' }),
    fc.array(pieces, { maxLength: 12 }).map((a) => a.join('')),
  );
  fc.assert(
    fc.property(locations, fc.boolean(), (loc, withSecret) => {
      for (const app of [strip, baseUrl]) {
        const out = firstLocation(app, target(loc, withSecret ? SECRET : undefined));
        assert.ok(out.startsWith(`/${app.name}/`), `${JSON.stringify(loc)} → ${out}`);
        assert.match(out, /^[\x21-\x7e]+$/, `${JSON.stringify(loc)} → ${out}`);
        assert.ok(!out.includes(SECRET), `${JSON.stringify(loc)} → ${out}`);
      }
    }),
    { numRuns: 3000 },
  );
});
