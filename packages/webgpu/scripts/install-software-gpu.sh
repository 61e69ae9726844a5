#!/bin/sh
# Install what Dawn (npm `webgpu`) needs to find a WebGPU adapter on a Debian/Ubuntu machine without a GPU,
# so that @ch8/webgpu's tests run on a software device instead of being skipped. Run as root; idempotent;
# quiet; never fails the caller (without apt, or offline, it says so and exits 0: the tests then skip).
#
#   libegl1 libegl-dev     EGL loader. Dawn dlopens the unversioned libEGL.so, which only libegl-dev ships.
#   libegl-mesa0           Mesa's EGL vendor library (surfaceless platform: no X/Wayland needed).
#   libgl1-mesa-dri        Mesa's gallium drivers, llvmpipe among them: the software OpenGL ES 3.2 device that
#                          Dawn's OpenGL ES backend runs on (featureLevel 'compatibility').
#   libvulkan1             Vulkan loader, dlopened by Dawn's Vulkan backend (also needed with a real GPU).
#   mesa-vulkan-drivers    lavapipe (software Vulkan). Debian 12's Mesa 22 build lacks a feature Dawn's Vulkan
#                          backend requires, so there the OpenGL ES path is what runs; with --backports
#                          (Mesa 25 from bookworm-backports, which upgrades the whole Mesa stack) Dawn takes
#                          lavapipe over Vulkan directly.
#
# Usage: install-software-gpu.sh [--backports]
set -u

PACKAGES="libegl1 libegl-dev libegl-mesa0 libgl1-mesa-dri libvulkan1 mesa-vulkan-drivers"
BACKPORTS=0
for arg in "$@"; do
  case "$arg" in
    --backports) BACKPORTS=1 ;;
    *) echo "install-software-gpu: unknown argument $arg (usage: $0 [--backports])" >&2; exit 0 ;;
  esac
done

say() { echo "install-software-gpu: $*" >&2; }

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  say "no apt-get here; skipping (WebGPU tests will be skipped unless a GPU stack is present)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "not root; skipping (run as root to install: $PACKAGES)"
  exit 0
fi

missing=""
for p in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    "install ok installed") ;;
    *) missing="$missing $p" ;;
  esac
done

export DEBIAN_FRONTEND=noninteractive
updated=0
if [ -n "$missing" ]; then
  if apt-get update -qq >/dev/null 2>&1; then updated=1; fi
  if apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
    say "installed:$missing"
  else
    say "could not install:$missing (offline?); WebGPU tests will be skipped"
    exit 0
  fi
fi

if [ "$BACKPORTS" = 1 ]; then
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  if [ "$codename" != bookworm ]; then
    say "--backports is for Debian bookworm (this is '${codename:-unknown}'); skipping it"
    exit 0
  fi
  list=/etc/apt/sources.list.d/bookworm-backports.list
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" >"$list"
    updated=0
  fi
  if [ "$updated" = 0 ]; then apt-get update -qq >/dev/null 2>&1 || true; fi
  if apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libegl-mesa0 libgl1-mesa-dri >/dev/null 2>&1; then
    say "Mesa from bookworm-backports: $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
  else
    say "could not install Mesa from bookworm-backports; keeping Debian's Mesa (OpenGL ES path)"
  fi
fi
exit 0
