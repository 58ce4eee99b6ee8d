#!/bin/sh
# Build a minimal Debian base image without any registry (docs/toolchains.md): debootstrap a root
# filesystem and `docker import` it. The toolchain Dockerfiles take the result as BASE_IMAGE.
#
# usage: scripts/make-base-image.sh [TAG] [SUITE] [MIRROR]
#   TAG     default fawheels/base:debian-bookworm
#   SUITE   default bookworm (gcc 12, the host's compiler, so wheels can be byte-identical)
#   MIRROR  default http://deb.debian.org/debian
# ENGINE=podman selects podman instead of docker.
set -eu

TAG=${1:-fawheels/base:debian-bookworm}
SUITE=${2:-bookworm}
MIRROR=${3:-http://deb.debian.org/debian}
ENGINE=${ENGINE:-docker}

if [ "$(id -u)" != 0 ]; then
    echo "make-base-image: debootstrap needs root" >&2
    exit 1
fi
command -v debootstrap >/dev/null || { echo "make-base-image: apt-get install debootstrap" >&2; exit 1; }

ROOTFS=$(mktemp -d /tmp/fawheels-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT

echo "make-base-image: debootstrap $SUITE from $MIRROR" >&2
# minbase keeps the image small; ca-certificates so apt/pip can use https before the host
# bundle is mounted.
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOTFS" "$MIRROR" >&2

# Same apt sources a stock Debian image has, so the Dockerfile's apt-get works unchanged.
cat > "$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
SOURCES
# Keep images small: no apt caches, docs or man pages.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/*

echo "make-base-image: $ENGINE import -> $TAG" >&2
tar -C "$ROOTFS" --numeric-owner -c . \
    | "$ENGINE" import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
"$ENGINE" image inspect --format '{{.Id}}' "$TAG"
