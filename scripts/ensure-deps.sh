#!/usr/bin/env bash
# Installs what building and testing Sluice needs, when it is missing. As root it runs apt-get; otherwise it
# prints the exact command to run and fails. Called by every make target that builds.
set -euo pipefail

packages=()
pkg-config --version >/dev/null 2>&1 || packages+=(pkg-config)
pkg-config --exists jansson 2>/dev/null || packages+=(libjansson-dev)
pkg-config --exists xenvchan 2>/dev/null || packages+=(libxen-dev)
for extra in "$@"; do
    case "$extra" in
        graphviz) command -v dot >/dev/null 2>&1 || packages+=(graphviz) ;;
        *) dpkg -s "$extra" >/dev/null 2>&1 || packages+=("$extra") ;;
    esac
done

if ! command -v swift >/dev/null 2>&1; then
    echo "error: no Swift toolchain on PATH. Install Swift 6.1 or later (swift.org) and run this again." >&2
    exit 1
fi

if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "installing: ${packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
    echo "error: missing packages. Run:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y ${packages[*]}" >&2
    exit 1
fi
