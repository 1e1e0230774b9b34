#!/bin/sh
# The dom0 half of Sluice's real-Xen suite: sluiced (with the xl toolstack) and dom0's agent on the xen transport, the
# server side of the vchan behaviour suite with work, calls from dom0 into work, the same-boot benchmark, and the
# checks only dom0 can make of work's VM-to-VM calls (the data channel's two ends, the audit log, the toolstack's
# domains). $WORK_ID and $VAULT_ID are the domUs' ids; the two halves meet through xenstore keys under work's data/.
S=/run/sluice
N=10485760
FAILED=0
ok() { echo "SLUICE_XEN_OK $*"; }
bad() { echo "SLUICE_XEN_FAIL $*"; FAILED=1; }
now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
key() { echo "/local/domain/$WORK_ID/data/$1"; }
await_key() {
    for i in $(seq 1 "${2:-1200}"); do value=$(xenstore-read "$(key "$1")" 2>/dev/null) && return 0; sleep 0.25; done
    return 1
}
export SLUICE_TRANSPORT=xen
mkdir -p $S
# work's checks and the other domUs' agents' logs, as they happen (their consoles are otherwise only printed at the
# end).
(tail -f /var/log/xen/guest-work.log 2> /dev/null | while read -r line; do
    case "$line" in *SLUICE_XEN* | *XENLAB*) echo "[work] $line" ;; esac
done) &
(tail -f /var/log/xen/guest-vault.log 2> /dev/null | while read -r line; do
    case "$line" in *sluice-agent* | *XENLAB*) echo "[vault] $line" ;; esac
done) &

# Emulated domUs take many seconds to boot: the daemon waits up to three minutes for a started one's agent.
sluiced --transport xen --inventory /etc/sluice/inventory.json --policy-dir /etc/sluice/policy.d \
    --audit-log $S/audit.log --toolstack-command /usr/lib/sluice/sluice-xl-toolstack \
    --agent-start-timeout-ms 180000 > $S/sluiced.out 2> $S/sluiced.err &
sluice-agent --transport xen --domain dom0 --socket $S/agent.sock --services /etc/sluice/services/dom0 \
    2> $S/agent.err &

# 1. The vchan behaviour suite on the xen backend: the server here, the client in work, one connect each.
port=1000
for scenario in datagram-echo stream-echo full-ring too-large close-with-data frames; do
    port=$((port + 1))
    out=$(timeout 240 sluice-vchan-probe server --backend xen --peer "$WORK_ID" --port $port --scenario $scenario 2>&1)
    case "$out" in ok*) ok "vchan $scenario (dom0 server): $out" ;; *) bad "vchan $scenario (dom0 server): $out" ;; esac
done

# 2. The bare ring, for the benchmark: vchan_test's server writes N bytes to its client in work, then answers pings.
out=$(timeout 120 vchan_test server "$WORK_ID" "/local/domain/$WORK_ID/data/bench-vchan" $N 262144 2>&1 | grep VCHAN_OK)
echo "SLUICE_XEN_BENCH bare libxenvchan ring, dom0 -> work, 256 KiB rings: ${out:-failed}"

# 3. Both domUs' agents connect by themselves.
for vm in work vault; do
    for i in $(seq 1 360); do grep -q "connected $vm" $S/sluiced.out && break; sleep 0.5; done
    if grep -q "connected $vm" $S/sluiced.out; then ok "$vm's agent connected"; else bad "$vm's agent never connected"; fi
done

# 4. Calls from dom0 into work (they bypass policy, as every call from dom0).
out=$(echo hello-work | sluice-call --agent $S/agent.sock work test.Echo 2> /tmp/echo.err)
status=$?
if [ "$status" = 0 ] && [ "$out" = hello-work ] && grep -q "work: called by dom0" /tmp/echo.err; then
    ok "dom0 -> work test.Echo"
else
    bad "dom0 -> work test.Echo: exit $status, out '$out', err '$(cat /tmp/echo.err)'"
fi
sluice-call --agent $S/agent.sock work test.Missing < /dev/null > /dev/null 2>&1
status=$?
if [ "$status" = 127 ]; then ok "dom0 -> work unknown service: 127"; else bad "dom0 -> work unknown service: exit $status"; fi
head -c $N /dev/urandom > /tmp/in
sluice-call --agent $S/agent.sock work test.Cat < /tmp/in > /tmp/out 2> /tmp/cat.err
status=$?
if [ "$status" = 0 ] && [ "$(md5sum < /tmp/in)" = "$(md5sum < /tmp/out)" ]; then
    ok "dom0 -> work 10 MB each way through cat, checksums match"
else
    bad "dom0 -> work 10 MB through cat: exit $status, $(wc -c < /tmp/out) bytes back, $(cat /tmp/cat.err)"
fi

# 5. The benchmark: a stream through a call in the bare ring's direction, and the round trip of a trivial call.
start=$(now)
head -c $N /dev/zero | sluice-call --agent $S/agent.sock work test.Sink > /dev/null 2>&1
status=$?
seconds=$(elapsed "$start")
echo "SLUICE_XEN_BENCH sluice call stream, dom0 -> work: $N bytes in $seconds s ($(awk -v n=$N -v s="$seconds" 'BEGIN { if (s > 0) printf "%.1f", n / s / 1e6; else print "?" }') MB/s), exit $status"
start=$(now)
calls=0
for i in 1 2 3 4 5 6 7 8 9 10; do
    sluice-call --agent $S/agent.sock work test.True < /dev/null > /dev/null 2>&1 && calls=$((calls + 1))
done
seconds=$(elapsed "$start")
echo "SLUICE_XEN_BENCH trivial call dom0 -> work (new sluice-call process each): $calls/10 in $seconds s, $(awk -v s="$seconds" 'BEGIN { printf "%.0f", s * 100 }') ms each"
[ "$calls" = 10 ] || bad "trivial calls dom0 -> work: only $calls of 10 succeeded"
xenstore-write "$(key dom0-ready)" 1

# 6. While work's slow call into vault runs, its data channel is between work and vault alone: work (the caller)
# offers it to vault in xenstore, and dom0 has no vchan to either of them on that port. The payload never passes
# through dom0: the daemon only ever held the two control channels.
if await_key slow-running 720; then
    port=$(xenstore-list "/local/domain/$WORK_ID/data/vchan/$VAULT_ID" 2>/dev/null | head -1)
    if [ -n "$port" ] && [ -n "$(xenstore-read "/local/domain/$WORK_ID/data/vchan/$VAULT_ID/$port/ring-ref" 2>/dev/null)" ]; then
        ok "work's call into vault: its data vchan is work's, offered to vault ($VAULT_ID) on port $port"
    else
        bad "work's call into vault: no data vchan from work to vault in xenstore"
    fi
    if xenstore-list "/local/domain/0/data/vchan/$WORK_ID/$port" > /dev/null 2>&1 ||
        xenstore-list "/local/domain/0/data/vchan/$VAULT_ID/$port" > /dev/null 2>&1; then
        bad "dom0 offers a vchan on the VM-to-VM call's port $port"
    else
        ok "dom0 is no end of the VM-to-VM call's data channel"
    fi
    xenstore-write "$(key slow-checked)" 1
else
    bad "work never said its slow call was running"
fi

# 7. Wait for work's half, then check what dom0 recorded of it.
await_key sluice-done 1200 || bad "work's half never finished"
echo "work's half: ${value:-?}"
audit() { grep "\"source\":\"work\"" $S/audit.log | grep "\"service\":\"$1\"" | grep "\"target\":$2" | grep -c "\"event\":\"$3\""; }
[ "$(audit test.Whoami '"dom0"' decided)" -ge 1 ] && ok "the audit log names work by its Xen name (into dom0)" ||
    bad "no decided test.Whoami record from work into dom0"
[ "$(audit test.Denied '"dom0"' refused)" -ge 1 ] && [ "$(audit test.Denied '"vault"' refused)" -ge 0 ] &&
    ok "the audit log records the denied calls from work" || bad "no refused test.Denied record from work"
vm=$(audit test.Echo '"vault"' ended)
[ "$vm" -ge 21 ] && ok "the audit log has an ended line for each VM-to-VM echo ($vm)" ||
    bad "only $vm ended test.Echo lines from work into vault"
if grep -q '"source":"liar"' $S/audit.log; then bad "a record names work by the name its agent claimed"; else ok "work's claimed name appears nowhere"; fi
# The toolstack: sleepy was started for its call, and the disposable was made, used and destroyed.
grep '"target":"sleepy"' $S/audit.log | grep -q '"event":"ended"' && xl domid sleepy > /dev/null 2>&1 &&
    ok "sleepy was started through the toolstack for work's call, and runs" || bad "sleepy: $(grep sleepy $S/audit.log)"
disp=$(grep '"requested_target":"@dispvm:dvm"' $S/audit.log | grep '"event":"ended"' | sed -n 's/.*"target":"\(disp[0-9]*\)".*/\1/p' | head -1)
if [ -n "$disp" ]; then
    for i in $(seq 1 120); do xl domid "$disp" > /dev/null 2>&1 || break; sleep 0.5; done
    if xl domid "$disp" > /dev/null 2>&1; then bad "the disposable $disp outlived its call"; else ok "the disposable $disp was made for its call and destroyed after it"; fi
else
    bad "no ended call into a disposable: $(grep dispvm $S/audit.log)"
fi
xenstore-write "$(key dom0-done)" 1
echo "---- audit log ----"; cat $S/audit.log
echo "---- sluiced stderr ----"; tail -30 $S/sluiced.err
exit $FAILED
