#!/usr/bin/env bash
# Builds the package and its tests with a sanitizer and runs the suites under it, in a scratch path of its own
# (.build/<sanitizer>) so that the ordinary debug build is untouched.
#
#   scripts/sanitize.sh thread|address [--filter REGEX]
#
# Every program the tests start (sluiced, sluice-agent, sluice-call, handlers written in Swift) is built with the
# same sanitizer. Each process writes its reports to .build/<sanitizer>-reports/report.<pid>, so a race or a memory
# error in a child whose stderr a test captured is not lost: the run fails if any report was written, even when
# every test passed. No suppressions are used (docs/sanitizers.md).
set -euo pipefail
sanitizer="${1:?usage: scripts/sanitize.sh thread|address [--filter REGEX]}"
shift
scratch=".build/$sanitizer"
reports="$(pwd)/.build/$sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"

started=$(date +%s)
echo "== building with -sanitize=$sanitizer"
swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch" 2>&1 | tail -3
echo "   built in $(( $(date +%s) - started )) s"

case "$sanitizer" in
    thread) export TSAN_OPTIONS="log_path=$reports/report" ;;
    address) export ASAN_OPTIONS="log_path=$reports/report:detect_leaks=0" ;;
    *) echo "error: unknown sanitizer $sanitizer" >&2; exit 2 ;;
esac

started=$(date +%s)
status=0
swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" --no-parallel "$@" \
    > "$scratch-tests.log" 2>&1 || status=$?
grep -E "^(✘|✔ Test run|✘ Test run)" "$scratch-tests.log" | tail -20 || true
echo "   tests ran in $(( $(date +%s) - started )) s (log: $scratch-tests.log)"

found=$(find "$reports" -type f | wc -l)
if [ "$found" != 0 ]; then
    echo "error: $found process(es) wrote a $sanitizer sanitizer report:" >&2
    for report in "$reports"/*; do
        echo "--- $report" >&2
        grep -E "WARNING|ERROR|SUMMARY" "$report" | head -5 >&2
    done
    status=1
fi
[ "$status" = 0 ] && echo "== $sanitizer sanitizer: no report, every test passed"
exit $status
