#!/bin/sh
# The domU half of Sluice's real-Xen suite, by role ($SLUICE_ROLE from the kernel command line). Every domU runs an
# agent on the xen transport. vault, sleepy and the disposables only serve. work runs the calls: the client side of
# the vchan behaviour suite, the bare ring's client for the benchmark, calls into dom0, VM-to-VM calls into vault,
# the halted sleepy (started through the toolstack) and a disposable; its agent claims a false name, since the daemon
# must know it as Xen does. It reports on its console and meets dom0 through xenstore keys under its data/.
S=/run/sluice
N=10485760
FAILED=0
ok() { echo "SLUICE_XEN_OK $*"; }
bad() { echo "SLUICE_XEN_FAIL $*"; FAILED=1; }
export SLUICE_TRANSPORT=xen
mkdir -p $S
claimed=$NAME
[ "$SLUICE_ROLE" = work ] && claimed=liar
if [ "$SLUICE_ROLE" != work ]; then
    # Serve until dom0 destroys this domain; the agent's log goes to the console, which dom0 shows.
    sluice-agent --transport xen --domain "$claimed" --socket $S/agent.sock --services /etc/sluice/services/domu &
    while :; do sleep 60; done
fi
sluice-agent --transport xen --domain "$claimed" --socket $S/agent.sock --services /etc/sluice/services/domu \
    2> $S/agent.err &
key() { echo "/local/domain/$DOMID/data/$1"; }
await_key() {
    for i in $(seq 1 "${2:-1200}"); do xenstore-read "$(key "$1")" > /dev/null 2>&1 && return 0; sleep 0.25; done
    return 1
}
call() { sluice-call --agent $S/agent.sock "$@"; }

# 1. The vchan behaviour suite: the client here, dom0 serves.
port=1000
for scenario in datagram-echo stream-echo full-ring too-large close-with-data frames; do
    port=$((port + 1))
    out=$(timeout 240 sluice-vchan-probe client --backend xen --server 0 --port $port --scenario $scenario \
        --retry-ms 230000 2>&1)
    case "$out" in ok*) ok "vchan $scenario (work client): $out" ;; *) bad "vchan $scenario (work client): $out" ;; esac
done
out=$(timeout 120 vchan_test client 0 "/local/domain/$DOMID/data/bench-vchan" $N 2>&1 | grep VCHAN_OK)
echo "SLUICE_XEN_BENCH bare libxenvchan ring, client side: ${out:-failed}"

# 2. Calls into dom0, once the agent's control channel is up.
for i in $(seq 1 240); do call dom0 test.True < /dev/null > /dev/null 2>&1 && break; sleep 0.5; done
out=$(echo hi-dom0 | call dom0 test.Echo 2> /tmp/echo.err)
status=$?
if [ "$status" = 0 ] && [ "$out" = hi-dom0 ]; then ok "work -> dom0 test.Echo, allowed"; else bad "work -> dom0 test.Echo: exit $status, out '$out', err '$(cat /tmp/echo.err)'"; fi
out=$(call dom0 test.Whoami < /dev/null 2>&1)
if [ "$out" = work ]; then ok "dom0 sees the caller as work, not the name its agent claimed"; else bad "test.Whoami in dom0 said '$out'"; fi
out=$(call dom0 test.Denied < /dev/null 2>&1)
status=$?
if [ "$status" = 126 ] && [ "$out" = "Request refused" ]; then ok "work -> dom0 denied: 126"; else bad "work -> dom0 test.Denied: exit $status, '$out'"; fi
call dom0 test.Missing < /dev/null > /dev/null 2>&1
status=$?
if [ "$status" = 127 ]; then ok "work -> dom0 unknown service: 127"; else bad "work -> dom0 unknown service: exit $status"; fi
head -c $N /dev/urandom > /tmp/in
call dom0 test.Cat < /tmp/in > /tmp/out 2> /tmp/cat.err
status=$?
if [ "$status" = 0 ] && [ "$(md5sum < /tmp/in)" = "$(md5sum < /tmp/out)" ]; then
    ok "work -> dom0 10 MB each way through cat, checksums match"
else
    bad "work -> dom0 10 MB through cat: exit $status, $(wc -c < /tmp/out) bytes back, $(cat /tmp/cat.err)"
fi

# 3. VM to VM: work calls vault; dom0 decides and brokers, the bytes go from domU to domU. (After dom0's own calls
# into work and its benchmark, so the two do not share the emulated CPU.)
await_key dom0-ready 1200 || bad "dom0 never said it was ready"
out=$(echo hello-vault | call vault test.Echo 2> /tmp/echo.err)
status=$?
if [ "$status" = 0 ] && [ "$out" = hello-vault ] && grep -q "vault: called by work" /tmp/echo.err; then
    ok "work -> vault test.Echo, allowed (VM to VM)"
else
    bad "work -> vault test.Echo: exit $status, out '$out', err '$(cat /tmp/echo.err)'"
fi
out=$(call vault test.Whoami < /dev/null 2>&1)
if [ "$out" = work ]; then ok "vault sees the caller as work, not the name its agent claimed"; else bad "test.Whoami in vault said '$out'"; fi
out=$(call vault test.Denied < /dev/null 2>&1)
status=$?
if [ "$status" = 126 ] && [ "$out" = "Request refused" ]; then ok "work -> vault denied: 126"; else bad "work -> vault test.Denied: exit $status, '$out'"; fi
call vault test.Missing < /dev/null > /dev/null 2>&1
status=$?
if [ "$status" = 127 ]; then ok "work -> vault unknown service: 127"; else bad "work -> vault unknown service: exit $status"; fi
call vault test.Cat < /tmp/in > /tmp/out 2> /tmp/cat.err
status=$?
if [ "$status" = 0 ] && [ "$(md5sum < /tmp/in)" = "$(md5sum < /tmp/out)" ]; then
    ok "work -> vault 10 MB each way through cat, checksums match"
else
    bad "work -> vault 10 MB through cat: exit $status, $(wc -c < /tmp/out) bytes back, $(cat /tmp/cat.err)"
fi
for i in $(seq 1 20); do
    (out=$(echo "concurrent-$i" | timeout 180 sluice-call --agent $S/agent.sock vault test.Echo 2> /tmp/concurrent-$i.err)
    echo $? > /tmp/concurrent-$i.status
    [ "$out" = "concurrent-$i" ] && touch /tmp/concurrent-ok-$i) &
done
wait
passed=$(ls /tmp/concurrent-ok-* 2> /dev/null | wc -l)
if [ "$passed" = 20 ]; then
    ok "20 concurrent calls work -> vault"
else
    bad "20 concurrent calls work -> vault: $passed passed; exits $(cat /tmp/concurrent-*.status | sort | uniq -c | tr '\n' ' '); $(cat /tmp/concurrent-*.err | sort | uniq -c | head -5 | tr '\n' ' ')"
fi

# 4. A slow call, for dom0 to look at its data channel while it runs.
(echo slow | call vault test.Slow > /tmp/slow.out 2>&1; echo $? > /tmp/slow.status) &
sleep 2
xenstore-write "$(key slow-running)" 1
await_key slow-checked 480 || bad "dom0 never looked at the slow call"
wait
[ "$(cat /tmp/slow.status)" = 0 ] && [ "$(cat /tmp/slow.out)" = slow ] && ok "work -> vault slow call" ||
    bad "work -> vault slow call: exit $(cat /tmp/slow.status), '$(cat /tmp/slow.out)'"

# 5. The toolstack: sleepy is halted and started for this call; a disposable is made from dvm for the next.
out=$(echo wake-up | call sleepy test.Echo 2> /tmp/sleepy.err)
status=$?
if [ "$status" = 0 ] && [ "$out" = wake-up ] && grep -q "sleepy: called by work" /tmp/sleepy.err; then
    ok "work -> sleepy: the halted domain was started for the call"
else
    bad "work -> sleepy: exit $status, out '$out', err '$(cat /tmp/sleepy.err)'"
fi
out=$(echo in-a-disposable | call @dispvm:dvm test.Echo 2> /tmp/disp.err)
status=$?
if [ "$status" = 0 ] && [ "$out" = in-a-disposable ] && grep -q "^disp[0-9]*: called by work" /tmp/disp.err; then
    ok "work -> @dispvm:dvm: $(cut -d: -f1 /tmp/disp.err) was made for the call"
else
    bad "work -> @dispvm:dvm: exit $status, out '$out', err '$(cat /tmp/disp.err)'"
fi

[ "$FAILED" = 0 ] || tail -20 $S/agent.err
xenstore-write "$(key sluice-done)" "failed=$FAILED"
await_key dom0-done 1200
exit $FAILED
