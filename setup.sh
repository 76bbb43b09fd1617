#!/usr/bin/env bash
# README command one: install dependencies, build, and run the bundled example
# apps in their sandboxes (the main job).
set -euo pipefail
cd "$(dirname "$0")"
scripts/install-deps
if [ ! -f build/build.ninja ]; then
        meson setup build --buildtype=release >/dev/null
fi
ninja -C build
exec scripts/demo build
