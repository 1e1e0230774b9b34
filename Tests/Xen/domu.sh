#!/bin/sh
# The domU half of Sluice's real-Xen suite: an agent on the xen transport (started under a false name: the daemon
# must name the domU as Xen does), the client side of the vchan behaviour suite, the bare ring's client for the
# benchmark, and calls into dom0. It reports on its console and writes data/sluice-done in xenstore at the end.
S=/run/sluice
N=10485760
FAILED=0
ok() { echo "SLUICE_XEN_OK $*"; }
bad() { echo "SLUICE_XEN_FAIL $*"; FAILED=1; }
export SLUICE_TRANSPORT=xen
mkdir -p $S
sluice-agent --transport xen --domain vault --socket $S/agent.sock --services /etc/sluice/services/domu \
    2> $S/agent.err &

port=1000
for scenario in datagram-echo stream-echo full-ring too-large close-with-data frames; do
    port=$((port + 1))
    out=$(timeout 240 sluice-vchan-probe client --backend xen --server 0 --port $port --scenario $scenario \
        --retry-ms 230000 2>&1)
    case "$out" in ok*) ok "vchan $scenario (domU client): $out" ;; *) bad "vchan $scenario (domU client): $out" ;; esac
done

out=$(timeout 120 vchan_test client 0 "/local/domain/$DOMID/data/bench-vchan" $N 2>&1 | grep VCHAN_OK)
echo "SLUICE_XEN_BENCH bare libxenvchan ring, client side: ${out:-failed}"

# Calls into dom0: wait for the agent's control channel, then each case.
for i in $(seq 1 240); do
    sluice-call --agent $S/agent.sock dom0 test.True < /dev/null > /dev/null 2>&1 && break
    sleep 0.5
done
out=$(echo hi-dom0 | sluice-call --agent $S/agent.sock dom0 test.Echo 2> /tmp/echo.err)
status=$?
if [ "$status" = 0 ] && [ "$out" = hi-dom0 ]; then ok "domU -> dom0 test.Echo, allowed"; else bad "domU -> dom0 test.Echo: exit $status, out '$out', err '$(cat /tmp/echo.err)'"; fi
out=$(sluice-call --agent $S/agent.sock dom0 test.Whoami < /dev/null 2>&1)
if [ "$out" = domu ]; then ok "dom0 sees the caller as domu, not the name its agent claimed"; else bad "test.Whoami said '$out'"; fi
out=$(sluice-call --agent $S/agent.sock dom0 test.Denied < /dev/null 2>&1)
status=$?
if [ "$status" = 126 ] && [ "$out" = "Request refused" ]; then ok "domU -> dom0 denied: 126"; else bad "domU -> dom0 test.Denied: exit $status, '$out'"; fi
sluice-call --agent $S/agent.sock dom0 test.Missing < /dev/null > /dev/null 2>&1
status=$?
if [ "$status" = 127 ]; then ok "domU -> dom0 unknown service: 127"; else bad "domU -> dom0 unknown service: exit $status"; fi
head -c $N /dev/urandom > /tmp/in
sluice-call --agent $S/agent.sock dom0 test.Cat < /tmp/in > /tmp/out 2> /tmp/cat.err
status=$?
if [ "$status" = 0 ] && [ "$(md5sum < /tmp/in)" = "$(md5sum < /tmp/out)" ]; then
    ok "domU -> dom0 10 MB each way through cat, checksums match"
else
    bad "domU -> dom0 10 MB through cat: exit $status, $(wc -c < /tmp/out) bytes back, $(cat /tmp/cat.err)"
fi
[ "$FAILED" = 0 ] || tail -20 $S/agent.err
xenstore-write "/local/domain/$DOMID/data/sluice-done" "failed=$FAILED"
# Stay up (and keep serving dom0's calls) until dom0's half has finished too.
for i in $(seq 1 900); do xenstore-read "/local/domain/$DOMID/data/dom0-done" > /dev/null 2>&1 && break; sleep 0.5; done
exit $FAILED
