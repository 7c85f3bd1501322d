#!/usr/bin/env bash
# The system packages the test suites need, installed when missing: `npm test` runs this
# first (package.json "pretest"), and so does CI, which runs exactly `npm test`.
#
#   chromium        the dashboard's and report's browser tests (playwright-core drives
#                   /usr/bin/chromium; nothing is downloaded)
#   podman, runc    container images and testcontainers (tests/k8s-*.spec.ts), with
#   busybox-static  busybox's applets inside the FROM-scratch test image
#   /etc/containers/containers.conf
#                   runc instead of crun (which fails on hybrid cgroups), cgroupfs, and
#                   rlimits that root in a VM sandbox may not raise (../shared/containers.md)
#   mesa-vulkan-drivers 25+, libvulkan1
#                   Mesa's software Vulkan driver (lavapipe), on which the webgpu backend's
#                   tests run without a GPU (libs/model webgpu.spec.ts, tests/webgpu.spec.ts).
#                   Bookworm's Mesa 22 offers Dawn no adapter: on bookworm it comes from
#                   bookworm-backports (added to apt's sources if missing)
#
# As root with apt-get, it installs what is missing. Otherwise it stops at once and
# prints the exact commands to run. It changes nothing when all is present.
set -euo pipefail

CONF=/etc/containers/containers.conf
read -r -d '' CONF_TEXT <<'CONF' || true
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

missing=()
test -x /usr/bin/chromium || missing+=(chromium)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
test -x /bin/busybox || missing+=(busybox-static)
mesa=$(dpkg-query -W -f '${Version}' mesa-vulkan-drivers 2>/dev/null || true)
vulkan_ok=true
if [ -z "$mesa" ] || ! dpkg --compare-versions "$mesa" ge 25 || ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 \
  || ! dpkg-query -W libvulkan1 >/dev/null 2>&1; then
  vulkan_ok=false
fi
codename=$( (. /etc/os-release && echo "${VERSION_CODENAME:-}") 2>/dev/null || true)
conf_ok=true
if [ ! -f "$CONF" ] || ! grep -q '^runtime = "runc"' "$CONF"; then conf_ok=false; fi

if [ ${#missing[@]} -eq 0 ] && $conf_ok && $vulkan_ok; then
  echo "system-deps: chromium, podman, runc, busybox-static, Mesa $mesa's lavapipe and $CONF are in place"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  {
    echo "system-deps: the tests need system packages that are missing, and this script installs them only as root on Debian (apt-get)."
    if [ ${#missing[@]} -gt 0 ]; then
      echo "  missing: ${missing[*]}"
      echo "  install: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
    fi
    if ! $vulkan_ok; then
      echo "  Mesa 25+ lavapipe (have: ${mesa:-none}): mesa-vulkan-drivers and libvulkan1 (on bookworm from"
      echo "  bookworm-backports: add it to apt's sources, then sudo apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1)"
    fi
    if ! $conf_ok; then
      echo "  $CONF must select runc (write it as root):"
      echo "$CONF_TEXT" | sed 's/^/      /'
    fi
    echo "  or run this script as root: sudo bash tests/system-deps.sh"
  } >&2
  exit 1
fi

started=$(date +%s)
if [ ${#missing[@]} -gt 0 ]; then
  echo "system-deps: installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! $vulkan_ok; then
  suite=()
  if [ "$codename" = bookworm ]; then
    suite=(-t bookworm-backports)
    if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      cat > /etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
      echo "system-deps: added bookworm-backports to apt's sources (Mesa 25 for lavapipe)"
    fi
  fi
  echo "system-deps: installing mesa-vulkan-drivers and libvulkan1 ${suite[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${suite[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null
  mesa=$(dpkg-query -W -f '${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  if [ -z "$mesa" ] || ! dpkg --compare-versions "$mesa" ge 25; then
    echo "system-deps: installed mesa-vulkan-drivers ${mesa:-(none)}, but the webgpu tests need Mesa 25 or newer (older lavapipe offers Dawn no adapter); install it from your distribution's backports" >&2
    exit 1
  fi
fi
if ! $conf_ok; then
  mkdir -p "$(dirname "$CONF")"
  if [ -f "$CONF" ]; then
    cp "$CONF" "$CONF.before-ringtrain"
    echo "system-deps: $CONF did not select runc; kept the old one as $CONF.before-ringtrain"
  fi
  printf '%s\n' "$CONF_TEXT" > "$CONF"
  echo "system-deps: wrote $CONF"
fi
echo "system-deps: done in $(( $(date +%s) - started )) s"
