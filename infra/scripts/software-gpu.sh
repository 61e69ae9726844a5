#!/usr/bin/env bash
# Installs what the webgpu tests need on a machine without a GPU: Debian's software Vulkan/GL drivers (Mesa's
# lavapipe/llvmpipe), used by Dawn through the npm package `webgpu`. Idempotent and never fatal: without root or
# apt the GPU tests report that no adapter could be had and skip.
set -u
if [ -x packages/webgpu/scripts/install-software-gpu.sh ] || [ -f packages/webgpu/scripts/install-software-gpu.sh ]; then
  exec bash packages/webgpu/scripts/install-software-gpu.sh
fi
echo "software-gpu: no installer script yet; webgpu tests will skip" >&2
exit 0
