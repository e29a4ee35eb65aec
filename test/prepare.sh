#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine and builds the fixtures it runs containers from.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages first: npm ci below builds the addon, which links them. gcc and libc6-dev also build the static
# probe the escape tests run inside containers.
need=()
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
for pkg in gcc libc6-dev docker-registry skopeo umoci apache2-utils openssl zstd; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# Libraries the addon builds with (see binding.gyp): libseccomp (required) compiles seccomp filters; ISA-L (used
# when present) inflates gzip layers ~2.5x faster than zlib.
build_deps=()
for pkg in libseccomp-dev libisal-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || build_deps+=("$pkg")
done
if [ $((${#need[@]} + ${#build_deps[@]})) -gt 0 ]; then
  echo "test/prepare: installing ${need[*]} ${build_deps[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" "${build_deps[@]}" >/dev/null
fi

# Node dependencies (and the native addon, built by their install script) on a fresh checkout; an addon built
# before the libraries above were installed is rebuilt to use them.
if [ ! -x node_modules/.bin/vitest ] || [ ! -d node_modules/node-addon-api ]; then
  echo "test/prepare: installing npm dependencies"
  npm ci --no-audit --no-fund
elif [ ${#build_deps[@]} -gt 0 ] && [ -d build ]; then
  echo "test/prepare: rebuilding the addon with ${build_deps[*]}"
  npm run build:addon --silent >/dev/null
elif [ -d build ] && [ ! -x build/Release/berth-docker-init ]; then
  # node-gyp-build keeps an existing build: one made before binding.gyp gained the --init binary lacks it.
  echo "test/prepare: rebuilding the addon (no berth-docker-init yet)"
  npm run build:addon --silent >/dev/null
fi

fixtures=${BERTH_FIXTURES:-/var/tmp/berth-fixtures}
rootfs="$fixtures/busybox"
stamp="$rootfs/.berth-fixture-v2"
if [ ! -e "$stamp" ]; then
  echo "test/prepare: building busybox rootfs in $rootfs"
  rm -rf "$rootfs.tmp"
  mkdir -p "$rootfs.tmp"/{bin,sbin,etc,root,tmp,home/app,usr/bin,usr/sbin,var,proc,sys,dev}
  chmod 1777 "$rootfs.tmp/tmp"
  cp /bin/busybox "$rootfs.tmp/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -sf /bin/busybox "$rootfs.tmp/bin/$applet"
  done
  cat > "$rootfs.tmp/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
app:x:1000:1000:app user:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
  cat > "$rootfs.tmp/etc/group" <<'GR'
root:x:0:
daemon:x:1:
audio:x:29:app
app:x:1000:
staff:x:50:app,daemon
nogroup:x:65534:
GR
  chown 1000:1000 "$rootfs.tmp/home/app"
  touch "$rootfs.tmp/.berth-fixture-v2"
  rm -rf "$rootfs"
  mv "$rootfs.tmp" "$rootfs"
fi
