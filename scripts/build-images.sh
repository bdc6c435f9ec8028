#!/usr/bin/env bash
# Builds warmpool's Docker images offline (nothing is pulled): warmpool/node:20 from this machine's own
# node binary and its libraries, then warmpool/standin:latest from examples/standin/Dockerfile.
# Idempotent: an image whose recorded inputs are unchanged is kept (FORCE=1 rebuilds both).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_IMAGE=warmpool/node:20
STANDIN_IMAGE=warmpool/standin:latest
STANDIN_ENTRY=dist/examples/standin/server.js
FORCE=${FORCE:-0}

log() { echo "[images] $*" >&2; }
die() { echo "[images] error: $*" >&2; exit 1; }

command -v docker >/dev/null || die "no docker CLI: install Docker (apt-get install -y docker.io)"
docker info >/dev/null 2>&1 || die "Docker Engine not reachable: start dockerd (systemctl start docker, or dockerd &), or run .ci/run"
command -v node >/dev/null || die "no node on PATH: warmpool/node:20 is made from this machine's node binary"

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
  cp "$bin" "$root/usr/local/bin/node"
  # ldd lines: "libx.so => /path/libx.so (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)".
  local lib
  while read -r lib; do
    [[ -n $lib ]] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
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

old_node=$(image_id "$NODE_IMAGE")
old_standin=$(image_id "$STANDIN_IMAGE")
build_node
build_standin
drop_if_untagged "$old_standin"
drop_if_untagged "$old_node"
