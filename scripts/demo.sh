#!/usr/bin/env bash
# make demo: a local host with an admin domain and three domains (work, vault, untrusted), using Policies/ and
# Examples/demo. It shows an allowed call, a refused call (126), an ask, a redirect, a call into dom0 and a
# disposable, then
# prints the audit log and stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug
run=$(mktemp -d /tmp/sluice-demo-XXXXXX)
# Run as root, sluice-host runs each domain as a user of its own, which must reach its run directory.
chmod 755 "$run"
trap 'kill "$host" 2>/dev/null; wait "$host" 2>/dev/null; rm -rf "$run"' EXIT

"$bin/sluice-host" --run-dir "$run/run" --inventory Examples/demo/inventory.json --policy-dir Policies \
    --services-root Examples/demo/services --ask-command "$PWD/Examples/demo/ask-yes.sh" > "$run/host.log" 2>&1 &
host=$!
for _ in $(seq 100); do grep -q ready "$run/host.log" && break; sleep 0.1; done
grep -q ready "$run/host.log" || { cat "$run/host.log"; exit 1; }

call() {  # call DOMAIN TARGET SERVICE [INPUT]
    local from=$1; shift
    printf '\n$ echo %q | sluice-call %s %s    # in %s\n' "${3:-}" "$1" "$2" "$from"
    set +e
    printf '%s\n' "${3:-}" | "$bin/sluice-call" --agent "$run/run/$from/agent.sock" "$1" "$2"
    local status=$?
    set -e
    echo "exit $status"
}

echo "== Sluice demo: domains dom0, work, vault, untrusted; policy in Policies/"
call work vault demo.Echo+hello "hello from work"                # allowed
call untrusted vault demo.GetSecret+api-token                   # refused: 126
call work vault demo.GetSecret+api-token                        # ask, answered yes by Examples/demo/ask-yes.sh
call untrusted "" demo.Echo "where do I go?"                    # @default, redirected to vault
call work dom0 demo.Echo "into the admin domain"                # policy-gated call to dom0
call untrusted dom0 demo.Echo "denied"                          # not trusted: 126
call untrusted @dispvm demo.Open+example.org ""        # a fresh disposable, destroyed after the call
echo
echo "== audit log ($run/run/audit.log)"
sleep 0.2
cat "$run/run/audit.log"
