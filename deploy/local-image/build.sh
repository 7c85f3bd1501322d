#!/usr/bin/env bash
# Builds localhost/ringtrain:TAG with podman from this machine alone: no base image, no
# registry (../shared/containers.md). The image is FROM scratch: this host's node binary
# and the libraries it links, busybox for a shell, and the app as it runs here (sources
# run through tsx, with node_modules less the development-only packages). For tests and
# local experiments; deploy/docker has the production images.
#   deploy/local-image/build.sh [TAG]      (default TAG: test)
set -euo pipefail
tag=${1:-test}
repo=$(cd "$(dirname "$0")/../.." && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/bin" "$root/bin" "$root/etc" "$root/app" "$root/tmp" "$root/data"
chmod 1777 "$root/tmp"

node=$(command -v node)
cp -L "$node" "$root/usr/bin/node"
for lib in $(ldd "$node" | grep -oE '/[^ ]+'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
ringtrain:x:10001:10001:ringtrain:/app:/bin/sh
P
cat > "$root/etc/group" <<'G'
root:x:0:
ringtrain:x:10001:
G
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"

# The app: what `npx ringtrain` needs, without tests, benchmarks and build tools.
tar -C "$repo" -cf - \
  --exclude='node_modules/typescript' --exclude='node_modules/nx' --exclude='node_modules/@nx' \
  --exclude='node_modules/kubernetes-models' --exclude='node_modules/@kubernetes-models' \
  --exclude='node_modules/playwright-core' --exclude='node_modules/testcontainers' \
  --exclude='node_modules/@types' --exclude='node_modules/.cache' --exclude='*.spec.ts' \
  --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
  package.json apps libs examples node_modules | tar -C "$root/app" -xf -

cat > "$ctx/Containerfile" <<'C'
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "chown", "10001:10001", "/data"]
ENV NODE_ENV=production \
    MALLOC_TRIM_THRESHOLD_=268435456 \
    MALLOC_MMAP_THRESHOLD_=33554432 \
    RINGTRAIN_OUT=/data/run
USER 10001:10001
WORKDIR /app
ENTRYPOINT ["/usr/bin/node", "/app/apps/cli/bin/ringtrain.mjs"]
C
podman build -q -t "localhost/ringtrain:$tag" "$ctx" >/dev/null
echo "localhost/ringtrain:$tag"
