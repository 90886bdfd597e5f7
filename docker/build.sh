#!/usr/bin/env bash
# Builds the Warren image from statically linked binaries built on this host:
#   docker/build.sh [TAG]        (default tag: warren:local)
# Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-warren:local}
TARGET=x86_64-unknown-linux-gnu
# Static, and without the debug information the release profile keeps for profiling.
RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --target "$TARGET" -p warren -p warrenctl
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp "target/$TARGET/release/warren" "target/$TARGET/release/warrenctl" "$STAGE/"
mkdir -p "$STAGE/rootfs/etc/warren" "$STAGE/rootfs/var/lib/warren"
echo "warren:x:999:999:Warren:/var/lib/warren:/sbin/nologin" > "$STAGE/rootfs/etc/passwd"
echo "warren:x:999:" > "$STAGE/rootfs/etc/group"
DOCKER_BUILDKIT=0 docker build -q -t "$TAG" -f docker/Dockerfile "$STAGE" > /dev/null
SIZE=$(docker image inspect --format '{{.Size}}' "$TAG")
echo "built $TAG: $((SIZE / 1024 / 1024)) MiB ($SIZE bytes)"
