#!/usr/bin/env bash
# Builds warmpool's Docker images offline (nothing is pulled): warmpool/node:20 from this machine's own
# node binary and its libraries, then warmpool/standin:latest from examples/standin/Dockerfile.
# IMAGES=warmpool (or IMAGES=all) also builds warmpool itself, warmpool/warmpool:latest from the
# Dockerfile, with warmpool/node-build:20 (node:20 plus this machine's npm, a shell and an npm cache
# holding just the packages it installs) as its build stage, and the network off.
# Idempotent: an image whose recorded inputs are unchanged is kept (FORCE=1 rebuilds them).
#   IMAGES=standin (default) | warmpool | all   (a list: "standin warmpool")
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_IMAGE=warmpool/node:20
STANDIN_IMAGE=warmpool/standin:latest
STANDIN_ENTRY=dist/examples/standin/server.js
NODE_BUILD_IMAGE=warmpool/node-build:20
WARMPOOL_IMAGE=warmpool/warmpool:latest
FORCE=${FORCE:-0}
IMAGES=${IMAGES:-standin}

log() { echo "[images] $*" >&2; }
die() { echo "[images] error: $*" >&2; exit 1; }

command -v docker >/dev/null || die "no docker CLI: install Docker (apt-get install -y docker.io)"
docker info >/dev/null 2>&1 || die "Docker Engine not reachable: start dockerd (systemctl start docker, or dockerd &), or run .ci/run"
command -v node >/dev/null || die "no node on PATH: warmpool/node:20 is made from this machine's node binary"

want_standin=0 want_warmpool=0
for name in ${IMAGES//,/ }; do
  case $name in
    standin) want_standin=1 ;;
    warmpool) want_warmpool=1 ;;
    all) want_standin=1 want_warmpool=1 ;;
    *) die "IMAGES names $name; expected standin, warmpool or all (a list: IMAGES=\"standin warmpool\")" ;;
  esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/warmpool-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The value of label $2 on image $1, empty when the image (or label) is missing.
label_of() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
# A rebuild leaves the previous image untagged: remove it unless something still uses it.
drop_if_untagged() {
  [[ -n $1 && $(docker image inspect --format '{{len .RepoTags}}' "$1" 2>/dev/null) == 0 ]] || return 0
  docker image rm "$1" >/dev/null 2>&1 || true
}

# Copies executable $2 into rootfs $1 (as $3, default its own path) with the libraries ldd names and the
# loader. ldd lines: "libx.so => /path/libx.so (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)".
copy_with_libs() {
  local root=$1 bin=$2 dest=${3:-$2} lib
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$bin" "$root$dest"
  while read -r lib; do
    [[ -n $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
}

# Digest of every file and link under $1 (path and content) but those whose path matches $2 (a find
# -path pattern, relative to $1; '' for none), plus the ids of the images named after it.
inputs_digest() {
  local dir=$1 skip=${2:-./-none-}
  shift 2
  ( (cd "$dir" && find . -type f ! -path "$skip" -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    (cd "$dir" && find . -type l ! -path "$skip" -printf '%p -> %l\n' | LC_ALL=C sort)
    for image in "$@"; do docker image inspect --format '{{.Id}}' "$image"; done ) | sha256sum | cut -c1-32
}

# ---- warmpool/node:20: the host's node, the libraries ldd names, the loader, /etc/passwd, /tmp ----
build_node() {
  local bin version stamp root
  bin=$(readlink -f "$(command -v node)")
  version=$(node --version)
  [[ $version == v20.* ]] || log "warning: host node is $version, tagging it $NODE_IMAGE anyway"
  # What the image is made of: a different node binary (or architecture) means a rebuild.
  stamp="$version-$(uname -m)-$(stat -c '%s-%Y' "$bin")"
  if [[ $FORCE != 1 && $(label_of "$NODE_IMAGE" warmpool.source) == "$stamp" ]]; then
    log "$NODE_IMAGE is current ($stamp)"
    return
  fi
  log "building $NODE_IMAGE from $bin ($version)"
  root="$WORK/node-rootfs"
  mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/home/node" "$root/root"
  chmod 1777 "$root/tmp"
  copy_with_libs "$root" "$bin" /usr/local/bin/node
  [[ -n $(ls "$root"/lib*/ld-linux* "$root"/lib*/*/ld-linux* 2>/dev/null) ]] || die "ldd named no dynamic loader for $bin"
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnode:x:1000:1000:node:/home/node:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  local owner=()
  if [[ $(id -u) == 0 ]]; then chown 1000:1000 "$root/home/node"; else owner=(--owner=0 --group=0); fi
  tar -C "$root" --numeric-owner "${owner[@]}" -c . | docker import \
    -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    -c 'CMD ["node"]' \
    -c "LABEL warmpool.source=$stamp" \
    -m "warmpool: host node $version with its shared libraries" \
    - "$NODE_IMAGE" >/dev/null
  docker run --rm --network none "$NODE_IMAGE" node -e 'process.exit(process.version.length > 0 ? 0 : 1)' \
    || die "$NODE_IMAGE was built but node does not run in it (a library ldd did not list?)"
  log "built $NODE_IMAGE"
}

# ---- warmpool/standin:latest: compiled stand-in + the node_modules it imports, from a small staging dir ----
build_standin() {
  if [[ ! -f $STANDIN_ENTRY ]]; then
    log "$STANDIN_ENTRY missing: npm run build"
    npm run --silent build || log "tsc reported errors (it still emits); checking for $STANDIN_ENTRY"
  fi
  [[ -f $STANDIN_ENTRY ]] || die "$STANDIN_ENTRY not built: fix the TypeScript build (npm run build)"
  local stage="$WORK/standin"
  mkdir -p "$stage"
  # The compiled files server.js reaches through relative imports (it may share modules outside its
  # folder), and the packages it imports by name, with their dependencies.
  node --input-type=module - "$STANDIN_ENTRY" "$stage" <<'EOF'
import { readFileSync, mkdirSync, copyFileSync, cpSync, existsSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, resolve, relative, join } from 'node:path';
const [entry, stage] = process.argv.slice(2);
const root = process.cwd();
const fail = (msg) => { console.error(`[images] error: ${msg}`); process.exit(1); };
const seen = new Set();
const packages = new Set();
const todo = [resolve(entry)];
while (todo.length) {
  const file = todo.pop();
  if (seen.has(file)) continue;
  seen.add(file);
  if (!existsSync(file)) fail(`${relative(root, file)} is imported but not built`);
  const dest = join(stage, relative(root, file));
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(file, dest);
  const src = readFileSync(file, 'utf8');
  for (const m of src.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)) {
    const spec = m[1];
    if (spec.startsWith('.')) todo.push(resolve(dirname(file), spec));
    else if (!isBuiltin(spec)) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
  }
}
const copied = new Set();
const pkgTodo = [...packages];
while (pkgTodo.length) {
  const name = pkgTodo.pop();
  if (copied.has(name)) continue;
  copied.add(name);
  const dir = join(root, 'node_modules', name);
  if (!existsSync(join(dir, 'package.json'))) { console.error(`[images] warning: the stand-in seems to import ${name}, which is not in node_modules (run npm ci if it does)`); continue; }
  cpSync(dir, join(stage, 'node_modules', name), { recursive: true, dereference: true });
  const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  pkgTodo.push(...Object.keys(pj.dependencies ?? {}));
}
console.error(`[images] stand-in: ${seen.size} compiled file(s); packages: ${[...copied].sort().join(', ') || 'none'}`);
EOF
  mkdir -p "$stage/node_modules"
  printf '{ "name": "warmpool-standin", "private": true, "type": "module" }\n' >"$stage/package.json"
  cp examples/standin/Dockerfile "$stage/Dockerfile"

  # Inputs: every staged file's path and content, and the base image.
  local digest
  digest=$( (cd "$stage" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; docker image inspect --format '{{.Id}}' "$NODE_IMAGE") | sha256sum | cut -c1-32)
  if [[ $FORCE != 1 && $(label_of "$STANDIN_IMAGE" warmpool.inputs) == "$digest" ]]; then
    log "$STANDIN_IMAGE is current ($digest)"
    return
  fi
  log "building $STANDIN_IMAGE ($(du -sh "$stage" | cut -f1) context)"
  if ! docker build --label "warmpool.inputs=$digest" -t "$STANDIN_IMAGE" "$stage" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    die "docker build of $STANDIN_IMAGE failed (log above)"
  fi
  log "built $STANDIN_IMAGE"
}

# ---- warmpool/node-build:20: warmpool/node:20 plus what the Dockerfile's build stage runs: this machine's
# npm, a shell (dash) and env (npm's shebang), and an npm cache holding exactly the packages the stage
# installs (production dependencies and the compiler), copied from this machine's npm cache ----
build_node_build() {
  local stage="$WORK/node-build" npm_dir host_cache
  local root="$stage/rootfs"
  command -v npm >/dev/null || die "no npm on PATH: warmpool/node-build:20 carries this machine's npm"
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  # Copied as a folder, so it must hold its own dependencies (npm from nodejs.org does; Debian's npm package does not).
  [[ -f $npm_dir/bin/npm-cli.js && -d $npm_dir/node_modules/cacache ]] \
    || die "npm at $npm_dir does not bundle its dependencies: use the npm that ships with node from nodejs.org (or npm install -g npm)"
  host_cache="$(npm config get cache)/_cacache"
  mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/bin"
  cp -r "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  copy_with_libs "$root" "$(readlink -f "$(command -v dash || command -v sh)")" /bin/sh
  copy_with_libs "$root" "$(readlink -f "$(command -v env)")" /usr/bin/env
  node scripts/compiler-lock.mjs "$stage/compiler" 2>/dev/null
  # The lock names no tarball URLs, so npm asks for each package's metadata (packument) too: copy both,
  # through npm's own cache library, for every package of the two locks this platform installs.
  node --input-type=module - "$npm_dir" "$host_cache" "$root/opt/npm-cache/_cacache" package-lock.json "$stage/compiler/package-lock.json" <<'EOF'
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
const [npmDir, from, to, ...locks] = process.argv.slice(2);
const cacache = createRequire(join(npmDir, 'package.json'))('cacache');
const fail = (msg) => { console.error(`[images] error: ${msg}`); process.exit(1); };
const want = new Map(); // name -> version, for the packages this platform installs
for (const [i, file] of locks.entries()) {
  for (const [path, e] of Object.entries(JSON.parse(readFileSync(file, 'utf8')).packages)) {
    if (!path || (i === 0 && e.dev)) continue; // from the main lock, production packages only
    const other = (list, mine) => Array.isArray(list) && !list.includes(mine);
    if (e.optional && (other(e.os, process.platform) || other(e.cpu, process.arch))) continue;
    want.set(path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length), e.version);
  }
}
const PREFIX = 'make-fetch-happen:request-cache:';
const found = new Set();
for (const [key, entry] of Object.entries(await cacache.ls(from))) {
  if (!key.startsWith(PREFIX)) continue;
  const parts = decodeURIComponent(new URL(key.slice(PREFIX.length)).pathname).slice(1).split('/');
  const name = parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  if (!want.has(name)) continue;
  const tarball = parts.includes('-');
  if (tarball && !parts.at(-1).endsWith(`-${want.get(name)}.tgz`)) continue;
  const { data } = await cacache.get(from, key);
  await cacache.put(to, key, data, { metadata: entry.metadata });
  found.add(tarball ? `${name} tarball` : name);
}
const missing = [...want.keys()].flatMap((n) => [n, `${n} tarball`]).filter((x) => !found.has(x));
if (missing.length) fail(`this machine's npm cache (${from}) lacks ${missing.join(', ')}: run npm ci once with the registry reachable (it fills the cache)`);
console.error(`[images] npm cache for the build stage: ${[...want.keys()].sort().join(', ')}`);
EOF
  cat >"$stage/Dockerfile" <<EOF
FROM $NODE_IMAGE
COPY rootfs/ /
ENV npm_config_cache=/opt/npm-cache npm_config_offline=true npm_config_update_notifier=false
EOF
  # The cache's index entries carry the time they were written: the content they point at counts, not them.
  local digest
  digest=$(inputs_digest "$stage" './rootfs/opt/npm-cache/_cacache/index-v5/*' "$NODE_IMAGE")
  if [[ $FORCE != 1 && $(label_of "$NODE_BUILD_IMAGE" warmpool.inputs) == "$digest" ]]; then
    log "$NODE_BUILD_IMAGE is current ($digest)"
    return
  fi
  log "building $NODE_BUILD_IMAGE ($(du -sh "$stage" | cut -f1) context)"
  if ! docker build --network none --label "warmpool.inputs=$digest" -t "$NODE_BUILD_IMAGE" "$stage" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    die "docker build of $NODE_BUILD_IMAGE failed (log above)"
  fi
  log "built $NODE_BUILD_IMAGE"
}

# ---- warmpool/warmpool:latest: the Dockerfile on a staged context (what it copies, nothing else),
# offline: the network off, warmpool/node-build:20 as the build stage, warmpool/node:20 at run time ----
build_warmpool() {
  local stage="$WORK/warmpool"
  mkdir -p "$stage/scripts"
  cp Dockerfile package.json package-lock.json tsconfig.json tsconfig.build.json "$stage/"
  cp scripts/compiler-lock.mjs "$stage/scripts/"
  # The sources: the top-level files and folders tsconfig.build.json includes.
  local src
  for src in $(node -e 'for (const g of JSON.parse(require("fs").readFileSync("tsconfig.build.json", "utf8")).include) console.log(g.split("/")[0])' | sort -u); do
    [[ -e $src ]] && cp -r "$src" "$stage/"
  done
  local digest
  digest=$(inputs_digest "$stage" '' "$NODE_IMAGE" "$NODE_BUILD_IMAGE")
  if [[ $FORCE != 1 && $(label_of "$WARMPOOL_IMAGE" warmpool.inputs) == "$digest" ]]; then
    log "$WARMPOOL_IMAGE is current ($digest)"
    return
  fi
  log "building $WARMPOOL_IMAGE ($(du -sh "$stage" | cut -f1) context)"
  local t0=$SECONDS
  # --force-rm: a failed RUN step leaves no stopped build container behind.
  if ! docker build --force-rm --network none --build-arg "BASE=$NODE_IMAGE" --build-arg "BUILD_BASE=$NODE_BUILD_IMAGE" \
    --label "warmpool.inputs=$digest" -t "$WARMPOOL_IMAGE" "$stage" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    die "docker build of $WARMPOOL_IMAGE failed (log above)"
  fi
  # The build stage's image is left untagged (LABEL warmpool.stage=build); only the final image is kept.
  docker image prune -f --filter label=warmpool.stage=build >/dev/null 2>&1 || true
  log "built $WARMPOOL_IMAGE in $((SECONDS - t0)) s, $(docker image inspect --format '{{.Size}}' "$WARMPOOL_IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
}

old_node=$(image_id "$NODE_IMAGE")
old_standin=$(image_id "$STANDIN_IMAGE")
old_node_build=$(image_id "$NODE_BUILD_IMAGE")
old_warmpool=$(image_id "$WARMPOOL_IMAGE")
build_node
if ((want_standin)); then build_standin; fi
if ((want_warmpool)); then
  build_node_build
  build_warmpool
fi
drop_if_untagged "$old_warmpool"
drop_if_untagged "$old_node_build"
drop_if_untagged "$old_standin"
drop_if_untagged "$old_node"
