#!/bin/bash
# Boots Xen + dom0 + the domUs under QEMU (TCG: no usable KVM on this machine kind) and runs the suite; adapted from
# the Xen lab reference harness. Exit 0 iff dom0's half and work's passed and no check anywhere printed a failure.
# There is no retry: a crash is a failure to explain (docs/xen.md).
set -u
W=${W:-${TMPDIR:-/tmp}/sluice-xen}
cd "$W"
LOG=${LOG:-$W/boot.log}
TIMEOUT=${TIMEOUT:-900}
# -smap: QEMU 7.2 TCG treats a ring-3 far return's stack pops as supervisor accesses (a PV kernel faults at once);
# -rdtscp: QEMU's SVM reports an RDTSCP intercept without NRIP.
ACC=(-accel tcg,thread=multi -cpu "${TCG_CPU:-max,-smap,-rdtscp}")
# spec-ctrl=eager-fpu: QEMU 7.2's TCG raises no #NM for XSAVE/XSAVEOPT/XRSTOR while CR0.TS is set, so Xen's lazy FPU
# switching let a PV guest's process run on another domain's vector registers (crashes, changed data; docs/xen.md).
XEN_ARGS=${XEN_ARGS:-"console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=1 loglvl=all guest_loglvl=all noreboot bootscrub=0 spec-ctrl=eager-fpu"}
DOM0_ARGS=${DOM0_ARGS:-"console=hvc0 earlyprintk=xen sluicexen=dom0 loglevel=4"}
T0=$(date +%s.%N)
since() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }'; }
qemu-system-x86_64 "${ACC[@]}" -machine pc -m "${QEMU_MEM:-4096}" -smp "${SMP:-1}" \
    -display none -monitor none -serial stdio -no-reboot \
    -kernel xen.elf -append "$XEN_ARGS" \
    -initrd "vmlinuz $DOM0_ARGS,dom0.cpio.gz" < /dev/null > "$LOG" 2>&1 &
QPID=$!
echo "[xen] qemu pid $QPID, log $LOG"
MILESTONES=("Xen version" "EAGER_FPU" "init start role=dom0" DOM0_TOOLSTACK_UP "xl create done" "vchan frames (dom0" "vault's agent connected" "work -> vault test.Echo" "sleepy was started" "was made for its call" DOM0_DOMU_HOOK_ XENLAB_DONE)
declare -A SEEN
while kill -0 $QPID 2> /dev/null; do
    for m in "${MILESTONES[@]}"; do
        if [ -z "${SEEN[$m]:-}" ] && grep -aq -- "$m" "$LOG"; then
            SEEN[$m]=1
            echo "[xen] t+$(since)s: $m"
        fi
    done
    if grep -aq XENLAB_DONE "$LOG"; then sleep 2; break; fi
    if grep -aq -e 'Hardware Dom0 crashed' -e 'Panic on CPU' "$LOG"; then echo "[xen] CRASH"; sleep 1; break; fi
    if awk -v a="$(date +%s.%N)" -v b="$T0" -v t="$TIMEOUT" 'BEGIN { exit !(a - b > t) }'; then
        echo "[xen] TIMEOUT after $TIMEOUT s"
        break
    fi
    sleep 0.5
done
kill $QPID 2> /dev/null
wait $QPID 2> /dev/null
grep -a -e 'SLUICE_XEN_' -e 'XENLAB\[' "$LOG" | tr -d '\r'
rc=1
if grep -aq DOM0_DOMU_HOOK_OK "$LOG" && grep -aq "DOMU_SUITE_DONE work" "$LOG" && ! grep -aq -e '_FAIL' -e 'FAIL:' "$LOG"; then
    rc=0
fi
if grep -aq -e 'Segmentation fault' -e 'Inconsistency detected by ld.so' -e 'Illegal instruction' "$LOG"; then
    echo "[xen] a process crashed in this boot: that is a failure (see $LOG)"
    rc=1
fi
grep -aq "EAGER_FPU" "$LOG" || echo "[xen] warning: Xen did not report EAGER_FPU for PV guests"
echo "[xen] boot and suite: $(since) s, rc=$rc"
exit $rc
