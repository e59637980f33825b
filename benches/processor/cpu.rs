//! CPU accounting and core pinning from `/proc` and `taskset`, so the bench can say what the
//! processor itself used and keep it on one core while the broker and the producer use another.

use std::process::Command;

/// Clock ticks per second of `/proc` CPU times (Linux's USER_HZ, 100 on every mainstream
/// architecture).
pub(crate) const USER_HZ: f64 = 100.0;

/// utime + stime (clock ticks) of `/proc/.../stat` text (fields 14 and 15, after the name).
fn stat_ticks(stat: &str) -> Option<u64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of the whole process, exited threads included.
pub(crate) fn process_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_ticks(&stat))
        .unwrap_or(0)
}

/// CPU ticks of one thread of this process so far.
pub(crate) fn thread_ticks(tid: u64) -> Option<u64> {
    stat_ticks(&std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?)
}

/// The calling thread's id.
pub(crate) fn this_thread() -> Option<u64> {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|path| path.file_name()?.to_str()?.parse::<u64>().ok())
}

/// The CPU ticks so far of every thread but this one (before the processor starts: the
/// embedded broker's and the producer's).
pub(crate) fn other_thread_ticks() -> Vec<(u64, u64)> {
    let this = this_thread();
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| task.file_name().to_str()?.parse::<u64>().ok())
                .filter(|tid| Some(*tid) != this)
                .filter_map(|tid| Some((tid, thread_ticks(tid)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Pins the calling thread to `core` (threads it creates afterwards inherit it); `false` when
/// the machine has a single core or `taskset` is missing.
pub(crate) fn pin_this_thread(core: usize) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let Some(tid) = this_thread() else {
        return false;
    };
    cores > core
        && Command::new("taskset")
            .args(["-p", "-c", &core.to_string(), &tid.to_string()])
            .output()
            .is_ok_and(|output| output.status.success())
}
