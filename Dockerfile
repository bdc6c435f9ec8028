# warmpool itself as an image. Build after `npm ci && npm run build` (the context carries dist/ and
# node_modules/). BASE defaults to Debian's node image; offline here: --build-arg BASE=warmpool/node:20.
ARG BASE=node:20-bookworm-slim
FROM ${BASE}
WORKDIR /opt/warmpool
COPY package.json package-lock.json ./
COPY node_modules/ node_modules/
COPY dist/ dist/
ENV WARMPOOL_CONFIG=/etc/warmpool/warmpool.yaml
# Runs as root to reach /var/run/docker.sock; mount the socket read-write.
# The node flags are the warmpool command's own (its shebang, bin/warmpool.ts; test/node-flags.test.ts keeps
# them equal). Named here because the offline base image has no /usr/bin/env to read the shebang with.
CMD ["node", "--max-semi-space-size=4", "/opt/warmpool/dist/bin/warmpool.js", "start"]
