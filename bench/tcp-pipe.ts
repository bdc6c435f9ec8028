// A reference variant, not a proxy: a Node process that pipes TCP bytes to the backend, with no HTTP
// parsing, no routing, no observation. Whatever it adds over a direct connection is the cost of one
// more Node process and two more loopback hops on this machine: the floor for any relay written in
// Node, warmpool included (the one-connection latency goal is read against it).
//
//   node dist/bench/tcp-pipe.js <backend-host> <backend-port>   → prints `READY {"port":N}`

import { connect, createServer, type Socket } from 'node:net';

const [host = '127.0.0.1', portArg = '0'] = process.argv.slice(2);
const backendPort = Number(portArg);

const server = createServer((client: Socket) => {
  client.setNoDelay(true);
  const upstream = connect({ host, port: backendPort, noDelay: true });
  client.pipe(upstream);
  upstream.pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
