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
conf_ok=true
if [ ! -f "$CONF" ] || ! grep -q '^runtime = "runc"' "$CONF"; then conf_ok=false; fi

if [ ${#missing[@]} -eq 0 ] && $conf_ok; then
  echo "system-deps: chromium, podman, runc, busybox-static and $CONF are in place"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  {
    echo "system-deps: the tests need system packages that are missing, and this script installs them only as root on Debian (apt-get)."
    if [ ${#missing[@]} -gt 0 ]; then
      echo "  missing: ${missing[*]}"
      echo "  install: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
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
