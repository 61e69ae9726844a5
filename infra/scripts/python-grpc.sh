#!/usr/bin/env bash
# Installs what the gateway's Python client test needs: Debian's gRPC for Python (python3-grpcio) and its code
# generator (python3-grpc-tools), used by /usr/bin/python3 to generate stubs from proto/inference/grpc_service.proto
# at test time. Idempotent and never fatal: without root, apt or the network it says so and exits 0, and the
# test skips with that reason.
set -u
PACKAGES="python3-grpcio python3-grpc-tools"
say() { echo "python-grpc: $*" >&2; }

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  say "no apt-get here; skipping (the gateway's Python client test will be skipped)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "not root; skipping (run as root to install: $PACKAGES)"
  exit 0
fi
missing=""
for p in $PACKAGES; do
  case "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" in
    "install ok installed") ;;
    *) missing="$missing $p" ;;
  esac
done
[ -z "$missing" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
if apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
  say "installed:$missing"
else
  say "could not install:$missing (offline?); the gateway's Python client test will be skipped"
fi
exit 0
