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
CMD ["node", "/opt/warmpool/dist/bin/warmpool.js", "start"]
