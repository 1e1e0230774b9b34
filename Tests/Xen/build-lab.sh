#!/bin/bash
# Builds what Sluice's real-Xen stage boots (adapted from the Xen lab reference harness): the Xen 4.17 hypervisor and
# Debian's 6.1 kernel, extracted from Debian packages (never installed), and two initramfs — dom0 (busybox, the Xen
# toolstack, Sluice, the suite's dom0 half, and the domU's kernel and initramfs) and the domU (busybox, Sluice, the
# suite's domU half). Sluice's binaries come from $SLUICE_BIN (release, Swift runtime linked statically).
# Output in $W (default ${TMPDIR:-/tmp}/sluice-xen).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
W=${W:-${TMPDIR:-/tmp}/sluice-xen}
SLUICE_BIN=${SLUICE_BIN:?set SLUICE_BIN to the directory of the static release binaries}
mkdir -p "$W"; cd "$W"

need_tools() { command -v qemu-system-x86_64 && command -v cpio && command -v gcc && [ -x /bin/busybox ] &&
    [ -e /usr/include/libxenvchan.h ]; }
if ! need_tools >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        qemu-system-x86 busybox-static cpio gcc libc6-dev libxen-dev >/dev/null
fi
if ! need_tools >/dev/null 2>&1; then
    echo "build-lab: qemu-system-x86_64 (or busybox-static, cpio, gcc, libxen-dev) is missing and could not be" \
        "installed: the real-Xen stage cannot run on this machine" >&2
    exit 3
fi
if ! [ -d x/usr/lib/xen-4.17 ]; then
    KPKG=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | head -1)
    rm -rf debs x; mkdir -p debs x
    (cd debs && apt-get download xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common \
        xenstore-utils "$KPKG" libyajl2 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    for d in debs/*.deb; do dpkg-deb -x "$d" x; done
fi
zcat x/boot/xen-4.17-amd64.gz > xen.elf
cp x/boot/vmlinuz-* vmlinuz
KV=$(ls x/lib/modules | head -1)
gcc -O2 -Wall -o vchan_test "$HERE/vchan_test.c" -lxenvchan

LIBPATH="$W/x/usr/lib/x86_64-linux-gnu:$W/x/lib/x86_64-linux-gnu"
# copy_bin ROOT SRC DEST: a binary and every shared library it needs
copy_bin() {
    local root=$1 src=$2 dst=$3
    install -D -m755 "$src" "$root$dst"
    LD_LIBRARY_PATH=$LIBPATH ldd "$src" 2>/dev/null | awk '/=> \//{print $3} /^[ \t]*\/lib64\//{print $1}' |
        while read -r lib; do
            local d=${lib#"$W"/x}
            [ -e "$root$d" ] || install -D -m755 "$(readlink -f "$lib")" "$root$d"
        done
}
base_root() {
    local root=$1
    shift
    local programs=("$@")
    rm -rf "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib/modules,etc/xen,proc,sys,dev,tmp,guest,root,run/sluice}
    cp /bin/busybox "$root/bin/busybox"
    for a in $(/bin/busybox --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
    ln -sf /proc/mounts "$root/etc/mtab"
    printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
    printf 'root:x:0:\n' > "$root/etc/group"
    for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
        cp "$(find "x/lib/modules/$KV" -name "$m.ko*" | head -1)" "$root/lib/modules/$m.ko"
    done
    install -m755 "$HERE/init.sh" "$root/init"
    for b in "${programs[@]}"; do
        copy_bin "$root" "$SLUICE_BIN/$b" "/usr/bin/$b"
        strip "$root/usr/bin/$b"   # symbols are a third of each binary: keep the initramfs small
    done
    copy_bin "$root" vchan_test /usr/bin/vchan_test
    copy_bin "$root" x/usr/bin/xenstore /usr/bin/xenstore
    for t in xenstore-read xenstore-write xenstore-ls xenstore-list xenstore-rm xenstore-exists; do
        ln -sf xenstore "$root/usr/bin/$t"
    done
    cp -a "$HERE/etc-sluice" "$root/etc/sluice"
    chmod 755 "$root"/etc/sluice/services/*/*
    install -D -m755 "$HERE/../../Examples/deploy/sluice-xl-toolstack" "$root/usr/lib/sluice/sluice-xl-toolstack"
}
mkcpio() { (cd "$1" && find . | cpio -o -H newc --quiet | gzip -1) > "$2"; }

# A domU runs no daemon: every domU boots this, and its memory holds the unpacked initramfs.
base_root "$W/rootfs-domu" sluice-agent sluice-call sluice-vchan-probe
install -D -m755 "$HERE/domu.sh" "$W/rootfs-domu/test/domu.sh"
mkcpio "$W/rootfs-domu" domu.cpio.gz

R="$W/rootfs-dom0"
base_root "$R" sluiced sluice-agent sluice-call sluice-vchan-probe
install -D -m755 "$HERE/dom0.sh" "$R/test/dom0.sh"
for b in xl xenstored xenconsoled xenconsole xen-init-dom0 libxl-save-helper xenstore-control; do
    copy_bin "$R" "x/usr/lib/xen-4.17/bin/$b" "/usr/lib/xen-4.17/bin/$b"
done
# glibc dlopen()s libgcc_s for pthread_cancel (xl uses it)
install -D -m644 /lib/x86_64-linux-gnu/libgcc_s.so.1 "$R/lib/x86_64-linux-gnu/libgcc_s.so.1"
cp -a x/etc/xen/xl.conf x/etc/xen/scripts "$R/etc/xen/" 2>/dev/null || true
cp vmlinuz "$R/guest/vmlinuz"; cp domu.cpio.gz "$R/guest/domu.cpio.gz"
mkcpio "$R" dom0.cpio.gz
ls -la xen.elf vmlinuz dom0.cpio.gz domu.cpio.gz | awk '{print "build-lab:", $5, $9}'
