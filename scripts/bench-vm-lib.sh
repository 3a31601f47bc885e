# Shared by the benchmarks that compare the vm backend with native (sourced, after WORK is
# set): the release build, the guest kernel, image and virtiofsd, the test registry with its
# images, and the helpers both use.

scripts/setup.sh >/dev/null
cargo build --release --quiet
kernel_dir="$(scripts/build-kernel.sh)"
export SKIFF_KERNEL="$kernel_dir/vmlinux"
export SKIFF_INITRAMFS="$(scripts/build-initramfs.sh target/release/skiff-agent)"
export SKIFF_VIRTIOFSD="$(scripts/build-virtiofsd.sh)"
scripts/test-registry.sh start >/dev/null
scripts/test-images.sh >/dev/null
set -a; eval "$(scripts/test-registry.sh env)"; set +a
REG="$SKIFF_REGISTRY"
SK="$PWD/target/release/skiff"

native() { SKIFF_BACKEND=native SKIFF_ROOT="$WORK/native" SKIFF_SOCKET="$WORK/native.sock" "$SK" "$@"; }
vm() { SKIFF_BACKEND=vm SKIFF_MACHINES="$WORK/machines" "$SK" "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Host CPU of the default machine's QEMU and daemon over SECONDS, in % of one core: "QEMU DAEMON".
idle_cpu() {
    local dir="$WORK/machines/default" q d q0 d0 q1 d1
    q=$(cat "$dir/qemu.pid"); d=$(cat "$dir/daemon.pid")
    q0=$(awk '{ print $14 + $15 }' "/proc/$q/stat"); d0=$(awk '{ print $14 + $15 }' "/proc/$d/stat")
    sleep "$1"
    q1=$(awk '{ print $14 + $15 }' "/proc/$q/stat"); d1=$(awk '{ print $14 + $15 }' "/proc/$d/stat")
    awk -v q=$((q1 - q0)) -v d=$((d1 - d0)) -v hz="$(getconf CLK_TCK)" -v s="$1" \
        'BEGIN { printf "%.2f %.2f\n", q * 100 / hz / s, d * 100 / hz / s }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "n/a"; else printf "%.2f", a / b }'; }
