#!/usr/bin/env bash
# Installs what the report's headless browser test needs: Debian's Chromium (`chromium`), used by
# packages/report/src/chromium.test.ts to render a generated report, screenshot it and read back the drawn DOM.
# Idempotent and never fatal: without root, apt or the network it says so and exits 0, and the test skips with that
# reason (or point CH8_CHROMIUM at a Chromium binary).
set -u
PACKAGES="chromium"
say() { echo "chromium: $*" >&2; }

if [ -n "${CH8_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get here; skipping (the report's browser test will be skipped)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "not root; skipping (run as root to install: $PACKAGES)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
if apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null 2>&1; then
  say "installed: $PACKAGES"
else
  say "could not install: $PACKAGES (offline?); the report's browser test will be skipped"
fi
exit 0
