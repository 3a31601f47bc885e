//! The guest's page cache, given back to the host once the guest is idle.
//!
//! Free page reporting (QEMU's `virtio-balloon-device,free-page-reporting=on` and the
//! kernel's `PAGE_REPORTING`) returns every block the guest frees to the host. The page cache
//! is not free, though: the kernel keeps a file's pages after the read until memory runs
//! short, which never happens in an idle VM, so one `cat` of a 1 GiB file would hold 1 GiB of
//! the laptop's memory for as long as the machine runs. So PID 1 watches the guest: after
//! `IDLE_INTERVALS` quiet intervals in a row, with more than `CACHE_FLOOR_KIB` of file cache,
//! it drops the clean page cache (`vm.drop_caches = 1`); the freed pages are then reported
//! like any others. The cost is that the next read after an idle spell comes from the disk,
//! which is a file in the host's own page cache.

use std::time::Duration;

/// How often the guest is looked at.
const INTERVAL: Duration = Duration::from_secs(5);
/// Quiet intervals in a row before the cache goes (10 s).
const IDLE_INTERVALS: u32 = 2;
/// Busier than this (in thousandths of the guest's CPU time) is not idle.
const BUSY_PERMILLE: u64 = 50;
/// Less file cache than this is not worth dropping.
const CACHE_FLOOR_KIB: u64 = 64 << 10;

/// The CPU time counters of `/proc/stat`'s first line, in ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

/// The `cpu` line of `/proc/stat`: idle and iowait count as not busy.
pub fn cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 5 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v[4];
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// The page cache of files, in KiB: `Active(file)` and `Inactive(file)` of `/proc/meminfo`
/// (tmpfs and the initramfs are on the anonymous lists, and cannot be dropped).
pub fn file_cache_kib(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(field("Active(file):")? + field("Inactive(file):")?)
}

/// Decides, one interval at a time, when to drop the cache.
#[derive(Default)]
pub struct Policy {
    quiet: u32,
}

impl Policy {
    /// True when the cache should go now: the guest was quiet between `before` and `now` and
    /// in the intervals before, and holds more than the floor.
    pub fn drop_now(&mut self, before: CpuTimes, now: CpuTimes, cache_kib: u64) -> bool {
        let total = now.total.saturating_sub(before.total);
        let busy = now.busy.saturating_sub(before.busy);
        if total == 0 || busy * 1000 > total * BUSY_PERMILLE {
            self.quiet = 0;
            return false;
        }
        self.quiet += 1;
        if self.quiet >= IDLE_INTERVALS && cache_kib > CACHE_FLOOR_KIB {
            self.quiet = 0;
            return true;
        }
        false
    }
}

/// Watch the guest from a thread of PID 1 for as long as it runs.
pub fn spawn() {
    std::thread::spawn(|| {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let mut policy = Policy::default();
        let mut before = cpu_times(&read("/proc/stat"));
        loop {
            std::thread::sleep(INTERVAL);
            let now = cpu_times(&read("/proc/stat"));
            let cache = file_cache_kib(&read("/proc/meminfo")).unwrap_or(0);
            if let (Some(b), Some(n)) = (before, now) {
                if policy.drop_now(b, n, cache) {
                    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "1") {
                        eprintln!("skiff-init: dropping the page cache: {e}");
                    }
                }
            }
            before = now;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(busy: u64, total: u64) -> CpuTimes {
        CpuTimes { busy, total }
    }

    #[test]
    fn reads_proc_stat_and_meminfo() {
        let stat = "cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n";
        assert_eq!(cpu_times(stat), Some(t(160, 980)));
        assert_eq!(cpu_times("intr 1 2 3\n"), None);
        let meminfo = "MemTotal: 1000 kB\nActive(anon): 7 kB\nActive(file): 300 kB\n\
                       Inactive(anon): 9 kB\nInactive(file): 200 kB\n";
        assert_eq!(file_cache_kib(meminfo), Some(500));
        assert_eq!(file_cache_kib("MemTotal: 1000 kB\n"), None);
    }

    #[test]
    fn drops_after_two_quiet_intervals_with_a_big_cache_only() {
        let big = CACHE_FLOOR_KIB + 1;
        let mut p = Policy::default();
        // 1 % busy: quiet.
        assert!(!p.drop_now(t(0, 0), t(10, 1000), big));
        assert!(p.drop_now(t(10, 1000), t(20, 2000), big));
        // The streak starts again after a drop.
        assert!(!p.drop_now(t(20, 2000), t(30, 3000), big));
        // A busy interval (10 %) breaks the streak.
        assert!(!p.drop_now(t(30, 3000), t(130, 4000), big));
        assert!(!p.drop_now(t(130, 4000), t(140, 5000), big));
        assert!(p.drop_now(t(140, 5000), t(150, 6000), big));
        // A small cache is left alone, however quiet the guest.
        let mut q = Policy::default();
        for i in 0..5 {
            assert!(!q.drop_now(t(i, i * 1000), t(i, (i + 1) * 1000), CACHE_FLOOR_KIB));
        }
    }
}
