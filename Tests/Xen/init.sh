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

if [ "$ROLE" = domu ]; then
    DOMID=$(xenstore-read domid) || fail "xenstore-read domid"
    export DOMID
    mark "domU up, domid=$DOMID"
    if /test/domu.sh; then mark "DOMU_SUITE_DONE"; else mark "DOMU_SUITE_FAIL"; fi
    sleep 1
    poweroff -f
fi

[ -n "$(grep control_d /proc/xen/capabilities)" ] || fail "not dom0"
xenstored --pid-file /var/run/xenstored.pid || fail "xenstored start"
for i in $(seq 1 50); do xenstore-read -s / >/dev/null 2>&1 && break; sleep 0.1; done
xen-init-dom0 || fail "xen-init-dom0"
xenconsoled --pid-file=/var/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen || fail "xenconsoled"
mark "DOM0_TOOLSTACK_UP"

cat > /etc/xen/domu.cfg <<CFG
name = "domu"
type = "pv"
kernel = "/guest/vmlinuz"
ramdisk = "/guest/domu.cpio.gz"
extra = "console=hvc0 sluicexen=domu quiet"
memory = ${DOMU_MEM:-512}
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
CFG
mark "xl create start"
if xl create /etc/xen/domu.cfg; then
    DOMID=$(xl domid domu)
    export DOMID
    mark "xl create done domid=$DOMID"
    if /test/dom0.sh; then mark "DOM0_DOMU_HOOK_OK"; else mark "DOM0_DOMU_HOOK_FAIL"; fi
    for i in $(seq 1 100); do xl domid domu >/dev/null 2>&1 || break; sleep 0.2; done
    echo "---- domU console log ----"
    grep -v '^$' /var/log/xen/guest-domu.log 2>/dev/null | grep -v '^\[' 
    echo "---- end of domU console log ----"
else
    mark "XL_CREATE_FAIL"
fi
mark "XENLAB_DONE"
sleep 1
poweroff -f
