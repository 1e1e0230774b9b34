#!/bin/sh
# /init of both initramfs (busybox sh), adapted from the Xen lab reference harness. The role comes from the kernel
# command line: sluicexen=dom0 | sluicexen=domu. dom0 starts xenstored, xen-init-dom0 and xenconsoled, creates the
# domU, runs /test/dom0.sh while the domU runs /test/domu.sh, prints the domU's whole console log, and powers off.
# Markers: XENLAB[uptime] ..., SLUICE_XEN_OK / SLUICE_XEN_FAIL per check (from the two halves of the suite).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /tmp /run /var/run/xen /var/run/xenstored /var/lib/xen /var/lib/xenstored /var/log/xen /var/lock
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
echo 1 > /proc/sys/debug/exception-trace 2>/dev/null
mark() { echo "XENLAB[$(cut -d' ' -f1 /proc/uptime)] $*"; }
fail() { mark "FAIL: $*"; dmesg | tail -30; sleep 1; poweroff -f; }

ROLE=$(sed -n 's/.*sluicexen=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
mark "init start role=$ROLE kernel=$(uname -r)"
for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
    insmod /lib/modules/$m.ko 2>/dev/null || echo "insmod $m failed (maybe built in)"
done
mkdir -p /proc/xen
mount -t xenfs xenfs /proc/xen || fail "mount xenfs"
# gntalloc lends 1 024 grant pages per domain by default; each control channel dom0 serves takes 65 and each data
# channel a caller serves 33 (docs/xen.md, "Grants").
echo 65536 > /sys/module/xen_gntalloc/parameters/limit 2>/dev/null

if [ "$ROLE" = domu ]; then
    DOMID=$(xenstore-read domid) || fail "xenstore-read domid"
    NAME=$(xenstore-read name 2>/dev/null || echo "domain$DOMID")
    # work runs the calls; vault, sleepy and the disposables only serve them.
    SLUICE_ROLE=$(sed -n 's/.*sluicerole=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
    export DOMID NAME SLUICE_ROLE
    mark "domU up, domid=$DOMID name=$NAME role=$SLUICE_ROLE"
    if /test/domu.sh; then mark "DOMU_SUITE_DONE $NAME"; else mark "DOMU_SUITE_FAIL $NAME"; fi
    sleep 1
    poweroff -f
fi

[ -n "$(grep control_d /proc/xen/capabilities)" ] || fail "not dom0"
xenstored --pid-file /var/run/xenstored.pid || fail "xenstored start"
for i in $(seq 1 50); do xenstore-read -s / >/dev/null 2>&1 && break; sleep 0.1; done
xen-init-dom0 || fail "xen-init-dom0"
xenconsoled --pid-file=/var/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen || fail "xenconsoled"
mark "DOM0_TOOLSTACK_UP"

# One config per domU: work and vault boot now; sleepy is started by the toolstack when work calls it; dvm is the
# template every disposable is made from (its name is given on xl's command line).
mkdir -p /etc/sluice/xl
for vm in work vault sleepy dvm; do
    role=$vm
    [ $vm = dvm ] && role=disp
    cat > /etc/sluice/xl/$vm.cfg <<CFG
name = "$vm"
type = "pv"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/domu.cpio.gz"
extra = "console=hvc0 sluicexen=domu sluicerole=$role quiet"
memory = ${DOMU_MEM:-512}
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
done
mark "xl create start"
consoles() {
    for log in /var/log/xen/guest-*.log; do
        echo "---- console of ${log#/var/log/xen/guest-} ----"
        grep -v '^$' "$log" 2>/dev/null | grep -v '^\['
    done
    echo "---- end of the domUs' console logs ----"
}
if xl create -q /etc/sluice/xl/work.cfg && xl create -q /etc/sluice/xl/vault.cfg; then
    WORK_ID=$(xl domid work)
    VAULT_ID=$(xl domid vault)
    export WORK_ID VAULT_ID
    if [ -z "$WORK_ID" ] || [ -z "$VAULT_ID" ]; then
        xl list
        consoles
        fail "a domU died right after it was created (work=$WORK_ID vault=$VAULT_ID)"
    fi
    mark "xl create done work=$WORK_ID vault=$VAULT_ID"
    if /test/dom0.sh; then mark "DOM0_DOMU_HOOK_OK"; else mark "DOM0_DOMU_HOOK_FAIL"; fi
    # work powers itself off when done; the others serve until they are destroyed.
    for i in $(seq 1 100); do xl domid work >/dev/null 2>&1 || break; sleep 0.2; done
    for vm in $(xl list | awk 'NR > 2 { print $1 }'); do xl destroy "$vm" >/dev/null 2>&1; done
    for i in $(seq 1 100); do [ "$(xl list | wc -l)" -le 2 ] && break; sleep 0.2; done
    consoles
else
    mark "XL_CREATE_FAIL"
fi
mark "XENLAB_DONE"
sleep 1
poweroff -f
