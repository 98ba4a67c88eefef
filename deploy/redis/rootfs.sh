#!/usr/bin/env bash
# Fills deploy/redis/rootfs/ with the host's Debian redis-server and
# redis-cli, every shared library they load and the dynamic loader, for the
# FROM scratch image in this folder (machines with no image registry).
# Installs redis-server with apt-get first when it is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/rootfs"

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "redis image: installing redis-server from Debian" >&2
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi
loader=/lib64/ld-linux-x86-64.so.2
if [ ! -e "$loader" ]; then
  echo "redis image: $loader not found: this recipe is for x86-64 Debian hosts; set REDIS_IMAGE to a Redis image instead" >&2
  exit 1
fi

rm -rf "$root" "$here/data"
mkdir -p "$root/usr/bin" "$root/lib64" "$root/tmp" "$here/data"
chmod 1777 "$root/tmp"
for bin in redis-server redis-cli; do
  # redis-server is a symlink (to redis-check-rdb): copy what it points to.
  cp -L "$(command -v "$bin")" "$root/usr/bin/$bin"
  # Every library ldd resolves to a path ("libx.so => /path (addr)" or
  # "/path (addr)"), copied to the same path, links followed.
  ldd "$(command -v "$bin")" | awk '/=> \// {print $3} /^\t\// {print $1}' | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
done
cp -L "$loader" "$root$loader"
echo "redis image: rootfs from $(redis-server --version | head -1) ($(du -sh "$root" | cut -f1))" >&2
