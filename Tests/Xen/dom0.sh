#!/bin/sh
# The dom0 half of Sluice's real-Xen suite: sluiced and dom0's agent on the xen transport, the server side of the
# vchan behaviour suite, calls into the domU, the same-boot benchmark, and the audit log. $DOMID is the domU's id.
S=/run/sluice
N=10485760
FAILED=0
ok() { echo "SLUICE_XEN_OK $*"; }
bad() { echo "SLUICE_XEN_FAIL $*"; FAILED=1; }
now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
export SLUICE_TRANSPORT=xen
mkdir -p $S

sluiced --transport xen --inventory /etc/sluice/inventory.json --policy-dir /etc/sluice/policy.d \
    --audit-log $S/audit.log > $S/sluiced.out 2> $S/sluiced.err &
sluice-agent --transport xen --domain dom0 --socket $S/agent.sock --services /etc/sluice/services/dom0 \
    2> $S/agent.err &

# 1. The vchan behaviour suite on the xen backend: the server here, the client in the domU, one connect each.
port=1000
for scenario in datagram-echo stream-echo full-ring too-large close-with-data frames; do
    port=$((port + 1))
    out=$(timeout 240 sluice-vchan-probe server --backend xen --peer "$DOMID" --port $port --scenario $scenario 2>&1)
    case "$out" in ok*) ok "vchan $scenario (dom0 server): $out" ;; *) bad "vchan $scenario (dom0 server): $out" ;; esac
done

# 2. The bare ring, for the benchmark: vchan_test's server writes N bytes to its client in the domU.
out=$(timeout 120 vchan_test server "$DOMID" "/local/domain/$DOMID/data/bench-vchan" $N 262144 2>&1 | grep VCHAN_OK)
echo "SLUICE_XEN_BENCH bare libxenvchan ring, dom0 -> domU, 256 KiB rings: ${out:-failed}"

# 3. The domU's agent connects to the daemon by itself.
for i in $(seq 1 360); do grep -q "connected domu" $S/sluiced.out && break; sleep 0.5; done
if grep -q "connected domu" $S/sluiced.out; then ok "the domU's agent connected"; else bad "the domU's agent never connected"; fi

# 4. Calls from dom0 into the domU (they bypass policy, as every call from dom0).
out=$(echo hello-domu | sluice-call --agent $S/agent.sock domu test.Echo 2> /tmp/echo.err)
status=$?
if [ "$status" = 0 ] && [ "$out" = hello-domu ] && grep -q "domu: called by dom0" /tmp/echo.err; then
    ok "dom0 -> domU test.Echo"
else
    bad "dom0 -> domU test.Echo: exit $status, out '$out', err '$(cat /tmp/echo.err)'"
fi
sluice-call --agent $S/agent.sock domu test.Missing < /dev/null > /dev/null 2>&1
status=$?
if [ "$status" = 127 ]; then ok "dom0 -> domU unknown service: 127"; else bad "dom0 -> domU unknown service: exit $status"; fi
head -c $N /dev/urandom > /tmp/in
sluice-call --agent $S/agent.sock domu test.Cat < /tmp/in > /tmp/out 2> /tmp/cat.err
status=$?
if [ "$status" = 0 ] && [ "$(md5sum < /tmp/in)" = "$(md5sum < /tmp/out)" ]; then
    ok "dom0 -> domU 10 MB each way through cat, checksums match"
else
    bad "dom0 -> domU 10 MB through cat: exit $status, $(wc -c < /tmp/out) bytes back, $(cat /tmp/cat.err)"
fi

# 5. The benchmark: a stream through a call in the bare ring's direction, and the round trip of a trivial call.
start=$(now)
head -c $N /dev/zero | sluice-call --agent $S/agent.sock domu test.Sink > /dev/null 2>&1
status=$?
seconds=$(elapsed "$start")
echo "SLUICE_XEN_BENCH sluice call stream, dom0 -> domU: $N bytes in $seconds s ($(awk -v n=$N -v s="$seconds" 'BEGIN { if (s > 0) printf "%.1f", n / s / 1e6; else print "?" }') MB/s), exit $status"
start=$(now)
calls=0
for i in 1 2 3 4 5 6 7 8 9 10; do
    sluice-call --agent $S/agent.sock domu test.True < /dev/null > /dev/null 2>&1 && calls=$((calls + 1))
done
seconds=$(elapsed "$start")
echo "SLUICE_XEN_BENCH trivial call dom0 -> domU (new sluice-call process each): $calls/10 in $seconds s, $(awk -v s="$seconds" 'BEGIN { printf "%.0f", s * 100 }') ms each"
[ "$calls" = 10 ] || bad "trivial calls dom0 -> domU: only $calls of 10 succeeded"

# 6. Wait for the domU's half, then check the audit log: the domU's calls are recorded under its Xen name.
for i in $(seq 1 600); do
    done=$(xenstore-read "/local/domain/$DOMID/data/sluice-done" 2>/dev/null) && break
    sleep 0.5
done
[ -n "${done:-}" ] || bad "the domU's half never finished"
if grep '"source":"domu"' $S/audit.log | grep '"service":"test.Whoami"' | grep -q '"decision":"allow"'; then
    ok "the audit log names the domU by its Xen name (allowed call)"
else
    bad "no allowed test.Whoami record from domu in the audit log"
fi
if grep '"source":"domu"' $S/audit.log | grep '"service":"test.Denied"' | grep -q '"decision":"deny"'; then
    ok "the audit log records the denied call from domu"
else
    bad "no denied test.Denied record from domu in the audit log"
fi
if grep -q '"source":"vault"' $S/audit.log; then bad "a record names the domU by the name its agent claimed"; else ok "the domU's claimed name appears nowhere"; fi
xenstore-write "/local/domain/$DOMID/data/dom0-done" 1
echo "---- audit log ----"; cat $S/audit.log
echo "---- sluiced stderr ----"; tail -20 $S/sluiced.err
exit $FAILED
