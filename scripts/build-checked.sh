#!/usr/bin/env bash
# Builds every target (tests included) and fails if the compiler printed a warning for the project's own code:
# warnings are fixed, not silenced. (Passing -warnings-as-errors to SwiftPM would also apply to dependencies.)
set -euo pipefail
configuration="${1:-debug}"
mkdir -p .build
log=.build/build-"$configuration".log
if ! swift build --build-tests -c "$configuration" 2>&1 | tee "$log"; then
    echo "error: the build failed" >&2
    exit 1
fi
if grep -E "^$(pwd)/(Sources|Tests|Examples|Benchmarks|Fuzz)/.*warning:" "$log" | sort -u | grep .; then
    echo "error: the build printed warnings (above); fix them" >&2
    exit 1
fi
