#!/bin/sh
# open-in-disposable.sh URL: opens URL in a fresh disposable domain instead of this one (like qvm-open-in-dvm).
# The URL travels on stdin, not as the service argument (arguments are limited to [A-Za-z0-9._+-]).
# SLUICE_AGENT_SOCKET (or the default /run/sluice/agent.sock) says which agent to ask.
set -eu
[ $# -eq 1 ] || { echo "usage: open-in-disposable.sh URL" >&2; exit 2; }
printf '%s' "$1" | exec sluice-call @dispvm example.OpenURL
