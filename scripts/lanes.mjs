// The fast lane (`npm run test:unit`): suites that need no Docker Engine, browser, nginx or child
// process, and keep time on the manual clock or real loopback sockets in this process only.
// Everything else (and these too) runs in the whole suite, `npm test`.
export const UNIT_LANE = [
  'admin-pool',
  'classify',
  'config',
  'docker-labels',
  'frames',
  'healthz',
  'http1-response-differential',
  'http1-response-properties',
  'pool',
  'pool-line',
  'protocol-frames',
  'protocol-peekers',
  'proxy-cookie',
  'proxy-http',
  'proxy-line',
  'proxy-passes',
  'proxy-upstream',
  'proxy-ws-handshake',
  'reaper',
  'relay-rules',
  'swarm-fleet-claims',
  'swarm-labels',
  'traffic-log',
  'traffic-log-privacy',
];
