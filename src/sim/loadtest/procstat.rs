//! What Linux's `/proc` says about CPU time and resident memory: per thread of this process
//! (so one process can attribute its CPU to the server, the emulator and the generator), and
//! per process (a server started separately, named by its PID).
//!
//! The parsers are pure and tested on captured text; the readers return `None` where `/proc`
//! is missing or unreadable (not Linux, a PID that exited), and the report then says
//! "unmeasured" rather than a wrong figure.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// `USER_HZ`: the unit of CPU times in `/proc/*/stat`, 100 on every Linux architecture.
const TICKS_PER_SECOND: u64 = 100;

/// The kernel's id of the calling thread (`/proc/thread-self` → `<pid>/task/<tid>`).
pub(super) fn current_tid() -> Option<u32> {
    let link = fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

/// The ids of this process's live threads.
pub(super) fn thread_ids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn task_path(tid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/task/{tid}/{file}"))
}

/// CPU time a thread of this process has used: nanoseconds from `schedstat` where the kernel
/// keeps it, else the 10 ms ticks of `stat`.
pub(super) fn thread_cpu(tid: u32) -> Option<Duration> {
    fs::read_to_string(task_path(tid, "schedstat"))
        .ok()
        .and_then(|text| parse_schedstat(&text))
        .or_else(|| {
            let text = fs::read_to_string(task_path(tid, "stat")).ok()?;
            parse_stat_cpu(&text)
        })
}

/// A thread's name (`comm`), for the report's list of threads nobody claimed.
pub(super) fn thread_name(tid: u32) -> Option<String> {
    fs::read_to_string(task_path(tid, "comm"))
        .ok()
        .map(|name| name.trim_end().to_owned())
}

fn proc_path(pid: Option<u32>, file: &str) -> PathBuf {
    match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/{file}")),
        None => PathBuf::from(format!("/proc/self/{file}")),
    }
}

/// CPU time of a whole process (this one when `pid` is `None`), threads that already exited
/// included.
pub(super) fn process_cpu(pid: Option<u32>) -> Option<Duration> {
    let text = fs::read_to_string(proc_path(pid, "stat")).ok()?;
    parse_stat_cpu(&text)
}

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Memory {
    /// `VmRSS`: resident now.
    pub(super) rss_kib: u64,
    /// `VmHWM`: the peak so far.
    pub(super) peak_kib: u64,
}

pub(super) fn memory(pid: Option<u32>) -> Option<Memory> {
    let text = fs::read_to_string(proc_path(pid, "status")).ok()?;
    Some(Memory {
        rss_kib: parse_status_kib(&text, "VmRSS")?,
        peak_kib: parse_status_kib(&text, "VmHWM")?,
    })
}

/// The first field of `schedstat`: nanoseconds spent on a CPU.
fn parse_schedstat(text: &str) -> Option<Duration> {
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// `utime + stime` of a `stat` line. The command name (field 2) is in parentheses and may
/// itself hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat_cpu(text: &str) -> Option<Duration> {
    let after_name = text.get(text.rfind(')')? + 1..)?;
    // After the name come field 3 (state) onwards: utime is field 14, stime field 15.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_millis(
        ticks.checked_mul(1000 / TICKS_PER_SECOND)?,
    ))
}

/// A `Key:   123 kB` line of `/proc/*/status`.
fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_counts_from_the_last_parenthesis() {
        let line = "4242 (actix-server (worker) 1) S 1 4242 4242 0 -1 4194560 2153 0 0 0 \
                    250 75 0 0 20 0 9 0 12345 123456789 2048 18446744073709551615";
        assert_eq!(parse_stat_cpu(line), Some(Duration::from_millis(3250)));
        assert_eq!(parse_stat_cpu("12 (cut) S 1 2"), None);
        assert_eq!(parse_stat_cpu("no parenthesis"), None);
    }

    #[test]
    fn schedstat_is_nanoseconds_on_cpu() {
        assert_eq!(
            parse_schedstat("380125790 178754895 82\n"),
            Some(Duration::from_nanos(380_125_790))
        );
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn status_lines_give_kib() {
        let status = "Name:\tswitchboard\nVmHWM:\t  81234 kB\nVmRSS:\t   70000 kB\nThreads:\t9\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(70_000));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(81_234));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let tid = current_tid().expect("thread-self");
            assert!(thread_ids().contains(&tid));
            assert!(thread_cpu(tid).is_some());
            assert!(thread_name(tid).is_some());
            assert!(process_cpu(None).is_some());
            let memory = memory(None).expect("status");
            assert!(memory.peak_kib >= memory.rss_kib && memory.rss_kib > 0);
        }
    }
}
