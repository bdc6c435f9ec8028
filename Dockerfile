# warmpool itself as an image: the library and the warmpool command compiled from source, with the
# production dependencies only. For docker compose and docker stack deploy (docker-compose.yml) and
# `docker build -t warmpool/warmpool .`; operations: docs/operations.md.
#
# BASE is the runtime stage's image, BUILD_BASE the build stage's (it needs npm and a shell). Offline
# (no registry), scripts/build-images.sh passes BASE=warmpool/node:20 and BUILD_BASE=warmpool/node-build:20,
# the host's node, npm and an npm cache holding exactly the packages below (IMAGES=warmpool).
ARG BASE=node:20-bookworm-slim
ARG BUILD_BASE=${BASE}

FROM ${BUILD_BASE} AS build
LABEL warmpool.stage=build
WORKDIR /build/src
COPY package.json package-lock.json ./
# Production dependencies only: the runtime stage copies this node_modules as it is.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
# The compiler alone (typescript, @types/node), at the versions package-lock.json pins, one folder up:
# tsc and the node types are found by walking up from /build/src, and never reach the runtime stage.
COPY scripts/compiler-lock.mjs /build/
RUN node /build/compiler-lock.mjs /build \
 && cd /build && npm ci --include=dev --ignore-scripts --no-audit --no-fund
# The sources (.dockerignore keeps the context to them); tsconfig.build.json names what compiles.
COPY . ./
RUN node /build/node_modules/typescript/bin/tsc -p tsconfig.build.json
# An empty folder, for the runtime stage's .state (WORKDIR makes it).
WORKDIR /build/state

FROM ${BASE}
WORKDIR /opt/warmpool
COPY --from=build /build/src/package.json ./
COPY --from=build /build/src/node_modules/ node_modules/
COPY --from=build /build/src/dist/ dist/
# stateDir (.state: the generated cookie key, the traffic log), writable by the user below; mount a
# volume here to keep them across restarts.
COPY --from=build --chown=1000:1000 /build/state/ .state/
ENV NODE_ENV=production WARMPOOL_CONFIG=/etc/warmpool/warmpool.yaml
# Not root: uid 1000 (`node` in both bases). The Docker socket (mounted at /var/run/docker.sock) must
# be reachable by the group warmpool runs with: `user: "1000:<the socket's gid>"` in compose, or
# `docker run --group-add "$(stat -c %g /var/run/docker.sock)"`. Access to that socket is root on the
# host all the same; this only keeps a compromised warmpool from owning its own container's files.
USER 1000:1000
# Asks warmpool's own /_warmpool/healthz where its config says it listens (WARMPOOL_HOST/PORT count,
# as for warmpool). node, not curl: the offline base image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "import('/opt/warmpool/dist/core/config.js').then(({ loadConfig }) => { const c = loadConfig(process.env.WARMPOOL_CONFIG); const host = c.host === '0.0.0.0' || c.host === '::' ? '127.0.0.1' : c.host; require('node:http').get({ host, port: c.port, path: '/_warmpool/healthz', timeout: 4000 }, (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('timeout', function () { this.destroy(new Error('timeout')); }).on('error', (e) => { console.error(e.message); process.exit(1); }); }, (e) => { console.error(e.message); process.exit(1); })"]
# The node flags are the warmpool command's own (its shebang, bin/warmpool.ts; test/node-flags.test.ts keeps
# them equal). Named here because the offline base image has no /usr/bin/env to read the shebang with.
CMD ["node", "--max-semi-space-size=4", "--initial-old-space-size=64", "/opt/warmpool/dist/bin/warmpool.js", "start"]
