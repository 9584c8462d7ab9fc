//! What keeps a lab from running away: a wall-clock limit and an operation budget
//! on the script, bounded sizes of its strings, arrays and maps, and the range
//! every number a lab gives a function must be in. Documented in the book
//! (writing-labs.md, "Limits").

use std::rc::Rc;
use std::time::{Duration, Instant};

use netlab_runtime::Error;
use rhai::{Dynamic, Engine, Map, NativeCallContext};

use super::values::{failure, Failure, RhaiResult};

/// `--max-time` when not given: a stuck lab (a `loop {}`, a wait that never ends)
/// fails within the hour instead of holding a CI job until the CI kills it, and the
/// largest lab netlab ships (labs/scale/w1.rhai at n = 63 500, extrapolated from
/// 14 s at n = 1000) still fits.
pub const DEFAULT_MAX_TIME: Duration = Duration::from_secs(3600);
/// The longest `--max-time` accepted: a week.
pub const MAX_MAX_TIME_S: f64 = 7.0 * 86_400.0;

/// `--max-operations` when not given. Rhai counts an operation per statement,
/// expression and loop iteration: labs/scale/w1.rhai takes 82 000 at n = 1000, 820 000
/// at n = 10 000, so ~5.2 M at its largest n = 63 500; the budget leaves ~19× room
/// above that and ends a runaway computation in ~3 s of a release build (~32 M
/// operations a second; a debug build runs ~2.7 M a second).
pub const DEFAULT_MAX_OPERATIONS: u64 = 100_000_000;

/// The longest string a lab may build, in bytes (Rhai counts the strings inside
/// an array or map together).
pub const MAX_STRING_BYTES: usize = 64 << 20;
/// The most items of all arrays inside one value (nested ones count), e.g. the
/// 63 500 nodes of w1 at its largest, or links() of such a host.
pub const MAX_ARRAY_ITEMS: usize = 4_000_000;
/// The most entries of all maps inside one value (nested ones count): links() of a
/// host with 63 500 links holds ~700 000.
pub const MAX_MAP_ENTRIES: usize = 4_000_000;

/// The longest timeout or window an option may ask for, in seconds (a day); with
/// the largest --slow-factor (1000) a deadline stays far from overflowing.
pub const MAX_SECONDS: f64 = 86_400.0;
/// The largest --slow-factor.
pub const MAX_SLOW_FACTOR: f64 = 1000.0;

/// The limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock time the lab's script may run (its native calls' own timeouts
    /// are cut to what is left of it).
    pub max_time: Duration,
    /// Rhai operations the lab's script may take (each imported module has a
    /// budget of its own).
    pub max_operations: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_time: DEFAULT_MAX_TIME, max_operations: DEFAULT_MAX_OPERATIONS }
    }
}

/// Why a lab was stopped: the token of Rhai's ErrorTerminated.
#[derive(Debug, Clone)]
pub enum Stopped {
    /// It ran past --max-time.
    MaxTime(Duration),
    /// SIGINT, SIGTERM or SIGHUP (netlab_runtime::interrupt).
    Signal(i32),
    /// A student's .rhai solution ran past its --timeout (the tasks are then graded).
    Solution,
}

impl Stopped {
    /// The error that ends the lab at `pos`.
    pub fn at(self, pos: rhai::Position) -> Box<rhai::EvalAltResult> {
        Box::new(rhai::EvalAltResult::ErrorTerminated(Dynamic::from(self), pos))
    }
}

/// Sizes of strings, arrays and maps, and the nesting limits: on every engine, so
/// `netlab check` meets them like `netlab run`.
pub fn bound_sizes(engine: &mut Engine) {
    engine.set_max_expr_depths(128, 64);
    engine.set_max_call_levels(64);
    engine.set_max_string_size(MAX_STRING_BYTES);
    engine.set_max_array_size(MAX_ARRAY_ITEMS);
    engine.set_max_map_size(MAX_MAP_ENTRIES);
}

/// The operation budget, the wall clock and stop signals, checked between operations;
/// and, while a .rhai solution runs, its own deadline (`solution`).
pub fn watch(engine: &mut Engine, limits: Limits, deadline: Instant, solution: Rc<std::cell::Cell<Option<Instant>>>) {
    engine.set_max_operations(limits.max_operations);
    engine.on_progress(move |ops| {
        if let Some(sig) = netlab_runtime::interrupt::signal() {
            return Some(Dynamic::from(Stopped::Signal(sig)));
        }
        // Reading the clock costs ~25 ns; every 1024th operation is often enough.
        if ops % 1024 != 0 {
            return None;
        }
        let now = Instant::now();
        if now >= deadline {
            return Some(Dynamic::from(Stopped::MaxTime(limits.max_time)));
        }
        solution.get().is_some_and(|end| now >= end).then(|| Dynamic::from(Stopped::Solution))
    });
}

/// A number `value` given as `option` that is outside `range`, at the call.
pub fn bad_option(ctx: &NativeCallContext, option: &str, value: &Dynamic, reason: String) -> Box<rhai::EvalAltResult> {
    let err = Error::BadOption { option: option.to_string(), value: value.to_string(), reason, help: None };
    failure(Failure::Error(Rc::new(err)), ctx.call_position())
}

/// A number of seconds: an int or a float, from 0 to MAX_SECONDS.
pub fn seconds(ctx: &NativeCallContext, option: &str, value: &Dynamic) -> RhaiResult<f64> {
    let number = value.as_float().ok().or_else(|| value.as_int().ok().map(|i| i as f64));
    match number {
        None => {
            Err(bad_option(ctx, option, value, format!("must be a number of seconds, not a {}", value.type_name())))
        }
        Some(s) if s.is_finite() && (0.0..=MAX_SECONDS).contains(&s) => Ok(s),
        Some(_) => Err(bad_option(ctx, option, value, format!("must be a number of seconds from 0 to {MAX_SECONDS}"))),
    }
}

/// An integer option within `range` (a count, a status, a port).
pub fn int_in(
    ctx: &NativeCallContext,
    opts: &Map,
    option: &str,
    range: std::ops::RangeInclusive<i64>,
) -> RhaiResult<Option<i64>> {
    let Some(value) = opts.get(option) else { return Ok(None) };
    match value.as_int() {
        Ok(i) if range.contains(&i) => Ok(Some(i)),
        Ok(_) => {
            Err(bad_option(ctx, option, value, format!("must be an integer from {} to {}", range.start(), range.end())))
        }
        Err(t) => Err(bad_option(ctx, option, value, format!("must be an integer, not a {t}"))),
    }
}

/// `--max-time SECONDS`: a positive number up to a week.
pub fn parse_max_time(text: &str) -> Result<Duration, String> {
    let s: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(s.is_finite() && s > 0.0 && s <= MAX_MAX_TIME_S) {
        return Err(format!("must be a number of seconds above 0 and at most {MAX_MAX_TIME_S} (a week)"));
    }
    Duration::try_from_secs_f64(s).map_err(|e| e.to_string())
}

/// `--slow-factor FACTOR`: finite, above 0, at most MAX_SLOW_FACTOR.
pub fn parse_slow_factor(text: &str) -> Result<f64, String> {
    let f: f64 = text.parse().map_err(|_| format!("{text:?} is not a number"))?;
    if !(f.is_finite() && f > 0.0 && f <= MAX_SLOW_FACTOR) {
        return Err(format!("must be a number above 0 and at most {MAX_SLOW_FACTOR}"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_numbers() {
        assert_eq!(parse_max_time("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_max_time("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "1e300", "inf", "NaN", "x", "700000"] {
            assert!(parse_max_time(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_slow_factor("2.5"), Ok(2.5));
        for bad in ["0", "-2", "1e300", "1001", "inf", "NaN", "slow"] {
            assert!(parse_slow_factor(bad).is_err(), "{bad}");
        }
    }
}
