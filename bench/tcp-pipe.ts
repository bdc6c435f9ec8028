// A reference variant, not a proxy: a Node process that pipes TCP bytes to the backend, with no HTTP
// parsing, no routing, no observation. Whatever it adds over a direct connection is the cost of one
// more Node process and two more loopback hops on this machine: the floor for any relay written in
// Node, warmpool included (the one-connection latency goal is read against it).
//
//   node dist/bench/tcp-pipe.js <backend-host> <port[,port…]>   → a listener per backend port, in order:
//   `READY {"port":N,"ports":[N,…]}` (port: the first; the burst gives each student its own instance)

import { connect, createServer, type Server, type Socket } from 'node:net';

const [host = '127.0.0.1', portArg = '0'] = process.argv.slice(2);
const backendPorts = portArg.split(',').map(Number);

function pipeTo(backendPort: number): Server {
  return createServer((client: Socket) => {
    client.setNoDelay(true);
    const upstream = connect({ host, port: backendPort, noDelay: true });
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
}

const listening = backendPorts.map(
  (p) =>
    new Promise<number>((resolve) => {
      const server = pipeTo(p);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    }),
);
void Promise.all(listening).then((ports) => {
  process.stdout.write(`READY ${JSON.stringify({ port: ports[0], ports })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
