#!/bin/sh
# Runs one service of the local stack the way `pnpm dev` (`turbo run dev`) starts it: each service's "dev" script
# is `sh ../../infra/scripts/dev-service.sh`, run by turbo with the service's package folder as working directory.
#
# - One state home for the whole stack, CH8_HOME (default <repo>/.cache/dev): the trainer's runs (<home>/trainer),
#   the model repository (<home>/models: the trainer exports there and the gateway serves from there), the pruned-table
#   cache of the embedding service (<home>/embeddings).
# - Data roots, CH8_DATA_ROOTS (comma-separated; the files the dataset and embedding services may read when a caller
#   names them): default <home>/data, plus <repo>/../shared/data when that folder exists. The default vectors (the
#   wink GloVe JSON) and the builtin review sets are always allowed and need no root.
# - Relative paths in CH8_HOME, CH8_MODEL_REPOSITORY, CH8_TRAINER_STATE_DIR, CH8_CACHE_DIR and CH8_DATA_ROOTS are
#   taken relative to the repository root, not to the package folder turbo runs this in.
# - `tsx watch` restarts the service when its sources, or those of a workspace package it runs on, change.
# `sh dev-service.sh --print-env` prints the resolved settings and tsx watch's arguments instead of starting.
set -eu
mode=${1:-}

root=$(cd "$(dirname "$0")/../.." && pwd -P)
service=$(basename "$(pwd -P)")
if [ ! -f "$root/services/$service/src/main.ts" ]; then
  echo "dev-service.sh: run me from a service folder (services/<name>), not from $(pwd -P)" >&2
  exit 2
fi

# Prints $1 as an absolute path: kept when absolute, else relative to the repository root.
absolute() {
  case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '%s/%s' "$root" "$1" ;;
  esac
}

CH8_HOME=$(absolute "${CH8_HOME:-.cache/dev}")
export CH8_HOME
for name in CH8_MODEL_REPOSITORY CH8_TRAINER_STATE_DIR CH8_CACHE_DIR; do
  eval "value=\${$name:-}"
  # shellcheck disable=SC2154 # set by the eval above
  if [ -n "$value" ]; then
    value=$(absolute "$value")
    export "$name=$value"
  fi
done

if [ -z "${CH8_DATA_ROOTS:-}" ]; then
  CH8_DATA_ROOTS="$CH8_HOME/data"
  mkdir -p "$CH8_DATA_ROOTS"
  if [ -d "$root/../shared/data" ]; then
    CH8_DATA_ROOTS="$CH8_DATA_ROOTS,$(cd "$root/../shared/data" && pwd -P)"
  fi
else
  roots=''
  old_ifs=$IFS
  IFS=,
  for r in $CH8_DATA_ROOTS; do
    [ -n "$r" ] || continue
    roots="${roots:+$roots,}$(absolute "$r")"
  done
  IFS=$old_ifs
  CH8_DATA_ROOTS=$roots
fi
export CH8_DATA_ROOTS

# Watch the sources of the workspace packages the service runs on (tsx follows the main thread's imports by itself,
# not those of the trainer's worker threads); tests never restart it. Exclusion globs must be absolute: tsx's watcher
# anchors relative ones at the service folder.
set -- --clear-screen=false --exclude "$root/**/*.test.ts"
old_ifs=$IFS
IFS='
'
for dir in $(node "$root/infra/scripts/watch-paths.mjs" "$root" "$root/services/$service"); do
  set -- "$@" --include "$dir/**/*.ts"
done
IFS=$old_ifs

if [ "$mode" = "--print-env" ]; then
  # What the service would start with (the tests of infra read it): the settings, then tsx watch's arguments.
  printf 'CH8_HOME=%s\nCH8_DATA_ROOTS=%s\n' "$CH8_HOME" "$CH8_DATA_ROOTS"
  for name in CH8_MODEL_REPOSITORY CH8_TRAINER_STATE_DIR CH8_CACHE_DIR; do
    eval "value=\${$name:-}"
    if [ -n "$value" ]; then printf '%s=%s\n' "$name" "$value"; fi
  done
  printf '%s\n' "$@"
  exit 0
fi
exec "$root/node_modules/.bin/tsx" watch "$@" src/main.ts
