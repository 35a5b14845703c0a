//! Logging in redis-server's format: `pid:role dd Mon yyyy hh:mm:ss.mmm level message`.
//!
//! Each line is formatted in a local buffer and written with one `write(2)` on
//! a raw descriptor: there is no lock, so a forked child (or another thread)
//! can log without any chance of finding a lock held by a thread that no
//! longer exists.

use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

/// Log levels, least to most severe.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
#[repr(u8)]
pub enum Level {
    /// `debug`
    Debug = 0,
    /// `verbose`
    Verbose = 1,
    /// `notice`
    Notice = 2,
    /// `warning`
    Warning = 3,
}

static FD: AtomicI32 = AtomicI32::new(1);
static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);
/// 'M' in the server, 'C' in a fork child (as Redis marks its lines).
static ROLE: AtomicU8 = AtomicU8::new(b'M');

/// Sets the level by its config name (`debug`, `verbose`, `notice`, `warning`).
pub fn set_level(name: &str) {
    let l = match name {
        "debug" => Level::Debug,
        "verbose" => Level::Verbose,
        "warning" => Level::Warning,
        _ => Level::Notice,
    };
    MIN_LEVEL.store(l as u8, Ordering::Relaxed);
}

/// Sends the log to `path` (appending), or to standard output when empty.
pub fn set_file(path: &str) -> std::io::Result<()> {
    use std::os::fd::IntoRawFd;
    if path.is_empty() {
        FD.store(1, Ordering::Relaxed);
        return Ok(());
    }
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let old = FD.swap(f.into_raw_fd(), Ordering::Relaxed);
    if old > 2 {
        // SAFETY: `old` was a descriptor this module opened and owns.
        unsafe { libc::close(old) };
    }
    Ok(())
}

/// Marks this process as a fork child in subsequent lines.
pub fn set_child_role() {
    ROLE.store(b'C', Ordering::Relaxed);
}

/// True when messages of `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed)
}

/// Writes one line if `level` is enabled.
pub fn log(level: Level, msg: &str) {
    if !enabled(level) {
        return;
    }
    let now = crate::util::now_us();
    let (secs, ms) = (now / 1_000_000, (now / 1000) % 1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mark = match level {
        Level::Debug => '.',
        Level::Verbose => '-',
        Level::Notice => '*',
        Level::Warning => '#',
    };
    let line = format!(
        "{}:{} {:02} {} {} {:02}:{:02}:{:02}.{:03} {} {}\n",
        std::process::id(),
        ROLE.load(Ordering::Relaxed) as char,
        d,
        MONTHS[(mo - 1) as usize],
        y,
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms,
        mark,
        msg
    );
    // SAFETY: writing a live buffer to a descriptor; errors are ignored as in Redis.
    unsafe { libc::write(FD.load(Ordering::Relaxed), line.as_ptr().cast(), line.len()) };
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

/// Logs at notice level with `format!` arguments.
#[macro_export]
macro_rules! notice {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Notice, &format!($($t)*)) };
}

/// Logs at warning level with `format!` arguments.
#[macro_export]
macro_rules! warning {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warning, &format!($($t)*)) };
}

/// Logs at verbose level with `format!` arguments (formatting skipped when disabled).
#[macro_export]
macro_rules! verbose {
    ($($t:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Verbose) {
            $crate::log::log($crate::log::Level::Verbose, &format!($($t)*))
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn calendar() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20416), (2025, 11, 24));
    }
}
