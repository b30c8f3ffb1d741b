#!/usr/bin/env bash
# Prepares this host to build and run the project's containers with podman, without Docker or a registry.
# Issue 22; what it does:
#   1. Debian's podman with runc and the CNI dnsname plugin (service names resolve inside a compose
#      network); podman-compose itself comes with `make install` (pyproject's dev extras);
#   2. /etc/containers/containers.conf: runc, cgroupfs, no default ulimits, host network namespace for
#      builds and file events (crun, systemd cgroups and rlimits fail in this workplace's sandbox);
#   3. the base image localhost/debian:bookworm (debootstrap --variant=minbase + podman import), which every
#      Dockerfile here takes as BASE when no registry can be reached.
# Idempotent: each step is skipped when its result is already there. Needs root (apt-get, debootstrap).
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_IMAGE=${BASE_IMAGE:-localhost/debian:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null \
    || [ ! -x /usr/lib/cni/dnsname ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends podman runc debootstrap uidmap slirp4netns fuse-overlayfs \
    containernetworking-plugins golang-github-containernetworking-plugin-dnsname iptables >/dev/null
fi
if ! grep -qs '^# portrait: container-host.sh' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  cat >/etc/containers/containers.conf <<'CONF'
# portrait: container-host.sh (the project's scripts/container-host.sh wrote this file)
[containers]
default_ulimits = []
netns = "host"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
fi
if ! podman image exists "$BASE_IMAGE"; then
  root=$(mktemp -d /tmp/debian-base.XXXXXX)
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
  tar -C "$root" -c . | podman import - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
fi
podman --version
echo "base image: $BASE_IMAGE ($(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes)"
