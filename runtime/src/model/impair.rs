//! Impairments: what `tc qdisc replace dev LINK root netem ...` or `... root tbf ...`
//! puts on a link's egress, as a value (the Op's payload), with the units a lab
//! writes (durations, percentages, rates with tc's units) and what the kernel keeps
//! and reports back (nanoseconds, 32-bit probabilities, bytes per second, psched
//! ticks), computed as iproute2's tc and the kernel compute them, so that the model
//! lists exactly what a run reads back.
//!
//! netem (CONFIG_NET_SCH_NETEM) does delay, jitter, loss, duplication, reordering
//! and, with any of those, the rate too (netem's own `rate`: packets wait their
//! serialization time, a link of that speed). A rate alone is a token bucket, tbf
//! (CONFIG_NET_SCH_TBF), as `tc qdisc add ... tbf rate ...` makes it.

use std::fmt::Write;

use super::Feature;

/// netem's queue length in packets unless the lab says otherwise (tc's default).
pub const NETEM_LIMIT: u32 = 1000;
/// tbf's queue as time at the rate, unless the lab says (`latency`).
pub const TBF_LATENCY_NS: u64 = 50_000_000;
/// tbf's bucket at least this many bytes: tc-tbf(8)'s example `burst 32kbit`,
/// above one full-size Ethernet frame (a packet larger than the bucket never passes).
pub const TBF_MIN_BURST: u32 = 4096;
/// The kernel's psched tick: 64 ns (PSCHED_SHIFT 6).
const PSCHED_SHIFT: u32 = 6;

/// An impairment of a link's egress, in the lab's units.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Impairment {
    /// Added delay, ns (netem `delay`).
    pub delay: Option<u64>,
    /// Delay varies by up to this much either way, ns (netem's second `delay` value).
    pub jitter: Option<u64>,
    /// Percent of packets dropped (netem `loss`).
    pub loss: Option<f64>,
    /// Percent of packets sent twice (netem `duplicate`).
    pub duplicate: Option<f64>,
    /// Percent of packets sent at once, ahead of the delayed ones (netem `reorder`).
    pub reorder: Option<f64>,
    /// Bits per second (netem `rate`, or tbf's).
    pub rate: Option<u64>,
    /// netem's queue, packets.
    pub limit: Option<u32>,
    /// tbf's bucket, bytes.
    pub burst: Option<u32>,
    /// tbf's queue as time at the rate, ns.
    pub latency: Option<u64>,
}

impl Impairment {
    /// Whether it needs netem: anything beyond a rate (and tbf's own burst/latency).
    pub fn uses_netem(&self) -> bool {
        self.delay.is_some()
            || self.jitter.is_some()
            || self.loss.is_some()
            || self.duplicate.is_some()
            || self.reorder.is_some()
            || self.limit.is_some()
    }

    /// The qdisc kind: "netem" or "tbf".
    pub fn kind(&self) -> &'static str {
        if self.uses_netem() {
            "netem"
        } else {
            "tbf"
        }
    }

    /// The kernel feature the qdisc needs.
    pub fn feature(&self) -> Feature {
        if self.uses_netem() {
            Feature::Netem
        } else {
            Feature::Tbf
        }
    }

    /// What tc itself would refuse, or what cannot mean anything; the reason.
    pub fn validate(&self) -> Result<(), String> {
        if *self == Impairment::default() {
            return Err("nothing to impair: give delay, jitter, loss, duplicate, reorder or rate \
                        (clear_impair() removes an impairment)"
                .into());
        }
        if self.jitter.is_some() && self.delay.is_none() {
            return Err("jitter varies the delay: give delay too".into());
        }
        if self.reorder.is_some() && self.delay.unwrap_or(0) == 0 {
            return Err("reorder sends some packets ahead of delayed ones: give a delay too (tc: \
                        \"reordering not possible without specifying some delay\")"
                .into());
        }
        if self.uses_netem() && (self.burst.is_some() || self.latency.is_some()) {
            return Err("burst and latency are tbf's, for a rate alone; with netem, limit sets the queue".into());
        }
        if !self.uses_netem() && self.rate.is_none() {
            return Err("burst and latency shape a rate: give rate too".into());
        }
        Ok(())
    }

    /// The rate as the kernel keeps it, bytes per second (tc truncates).
    pub fn rate_bytes(&self) -> u64 {
        self.rate.unwrap_or(0) / 8
    }

    /// tbf's bucket: the lab's, or 10 ms at the rate and at least TBF_MIN_BURST.
    pub fn tbf_burst(&self) -> u32 {
        self.burst
            .unwrap_or_else(|| (self.rate_bytes() / 100).clamp(u64::from(TBF_MIN_BURST), u64::from(u32::MAX)) as u32)
    }

    /// tbf's queue in bytes, from the latency, as tc computes it (`rate * latency +
    /// burst`, latency in whole microseconds).
    pub fn tbf_limit(&self) -> u32 {
        let latency_us = self.latency.unwrap_or(TBF_LATENCY_NS) / 1000;
        let limit = self.rate_bytes() as f64 * latency_us as f64 / 1e6 + f64::from(self.tbf_burst());
        limit.min(f64::from(u32::MAX)) as u32
    }

    /// tc's arguments after `root`: `netem delay 100ms 10ms loss 1%` or
    /// `tbf rate 10mbit burst 12500 latency 50ms`.
    pub fn tc_args(&self) -> String {
        let mut s = String::new();
        if self.uses_netem() {
            s += "netem";
            if let Some(d) = self.delay {
                let _ = write!(s, " delay {}", duration_text(d));
                if let Some(j) = self.jitter {
                    let _ = write!(s, " {}", duration_text(j));
                }
            }
            for (word, value) in [("loss", self.loss), ("duplicate", self.duplicate), ("reorder", self.reorder)] {
                if let Some(p) = value {
                    let _ = write!(s, " {word} {p}%");
                }
            }
            if let Some(r) = self.rate {
                let _ = write!(s, " rate {}", rate_text(r));
            }
            if let Some(l) = self.limit {
                let _ = write!(s, " limit {l}");
            }
        } else {
            let _ = write!(
                s,
                "tbf rate {} burst {} latency {}",
                rate_text(self.rate.unwrap_or(0)),
                self.tbf_burst(),
                duration_text(self.latency.unwrap_or(TBF_LATENCY_NS) / 1000 * 1000)
            );
        }
        s
    }

    /// What the kernel reports for this impairment on `dev` (RTM_GETQDISC).
    pub fn state(&self, dev: &str) -> QdiscState {
        let params = if self.uses_netem() {
            QdiscParams::Netem {
                delay_ns: self.delay.unwrap_or(0),
                jitter_ns: self.jitter.unwrap_or(0),
                loss: self.loss.map(probability).unwrap_or(0),
                duplicate: self.duplicate.map(probability).unwrap_or(0),
                reorder: self.reorder.map(probability).unwrap_or(0),
                rate_bytes: self.rate_bytes(),
                limit: self.limit.unwrap_or(NETEM_LIMIT),
            }
        } else {
            QdiscParams::Tbf {
                rate_bytes: self.rate_bytes(),
                buffer_ticks: tbf_buffer_ticks(self.rate_bytes(), self.tbf_burst()),
                limit: self.tbf_limit(),
            }
        };
        QdiscState { dev: dev.to_string(), kind: self.kind().to_string(), root: true, params }
    }
}

/// `clear_impair()` of a link with only the kernel's default qdisc: the kernel's
/// ENOENT ("Cannot delete qdisc with handle of zero"), said plainly.
pub fn nothing_to_clear(node: &str, link: &str) -> crate::error::Error {
    let mut err = crate::error::Error::kernel(
        "removing the impairment of",
        node,
        link,
        std::io::Error::from_raw_os_error(libc::ENOENT),
    );
    if let crate::error::Error::Kernel { help, .. } = &mut err {
        *help = Some(format!("{link} in {node} has no qdisc of its own to remove (impair() puts one there)"));
    }
    err
}

/// A qdisc as the kernel lists it (`tc qdisc show`), in the kernel's units.
#[derive(Debug, Clone, PartialEq)]
pub struct QdiscState {
    pub dev: String,
    pub kind: String,
    /// Attached at the link's root (not under another qdisc's class).
    pub root: bool,
    pub params: QdiscParams,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QdiscParams {
    Netem {
        delay_ns: u64,
        jitter_ns: u64,
        /// Probabilities as the kernel keeps them: 0 none, u32::MAX all.
        loss: u32,
        duplicate: u32,
        reorder: u32,
        rate_bytes: u64,
        /// Packets.
        limit: u32,
    },
    Tbf {
        rate_bytes: u64,
        /// The bucket as time at the rate, in psched ticks of 64 ns.
        buffer_ticks: u32,
        /// Bytes.
        limit: u32,
    },
    /// A kind netlab does not read the options of.
    Other,
}

impl QdiscState {
    /// One line for snapshots and diffs, every value as the kernel keeps it.
    pub fn describe(&self) -> String {
        let place = if self.root { "root" } else { "child" };
        let params = match &self.params {
            QdiscParams::Netem { delay_ns, jitter_ns, loss, duplicate, reorder, rate_bytes, limit } => format!(
                " delay {delay_ns}ns jitter {jitter_ns}ns loss {loss} duplicate {duplicate} reorder {reorder} \
                 rate {rate_bytes}Bps limit {limit}"
            ),
            QdiscParams::Tbf { rate_bytes, buffer_ticks, limit } => {
                format!(" rate {rate_bytes}Bps buffer {buffer_ticks} limit {limit}")
            }
            QdiscParams::Other => String::new(),
        };
        format!("qdisc {} dev {} {place}{params}", self.kind, self.dev)
    }
}

impl QdiscParams {
    /// tbf's bucket in bytes, from its ticks, as `tc qdisc show` computes it.
    pub fn burst(rate_bytes: u64, buffer_ticks: u32) -> u64 {
        ((u128::from(rate_bytes) * u128::from(buffer_ticks) * 64 + 500_000_000) / 1_000_000_000) as u64
    }

    /// tbf's latency in ns, as `tc qdisc show` computes it (limit / rate - bucket time).
    pub fn latency_ns(rate_bytes: u64, buffer_ticks: u32, limit: u32) -> i64 {
        if rate_bytes == 0 {
            return 0;
        }
        let queue = (u128::from(limit) * 1_000_000_000 / u128::from(rate_bytes)) as i64;
        queue - i64::from(buffer_ticks) * 64
    }
}

/// A percentage as the kernel's probability, as tc rounds it (rint(p * UINT32_MAX)).
pub fn probability(percent: f64) -> u32 {
    (percent / 100.0 * f64::from(u32::MAX)).round_ties_even().clamp(0.0, f64::from(u32::MAX)) as u32
}

/// The kernel's probability as a percentage, to a millionth of a percent.
pub fn percent(probability: u32) -> f64 {
    (f64::from(probability) / f64::from(u32::MAX) * 100.0 * 1e6).round() / 1e6
}

/// The kernel's psched_ratecfg_precompute: the multiplier and shift that turn a
/// length into nanoseconds at `rate` bytes per second.
fn psched_mult_shift(rate: u64) -> (u64, u32) {
    if rate == 0 {
        return (1, 0);
    }
    let (mut factor, mut shift) = (1_000_000_000u64, 0u32);
    loop {
        let mult = factor / rate;
        if mult & (1 << 31) != 0 || factor & (1 << 63) != 0 {
            return (mult & 0xffff_ffff, shift);
        }
        factor <<= 1;
        shift += 1;
    }
}

/// The bucket of `burst` bytes at `rate` as tbf keeps it (psched_l2t_ns) and dumps
/// it (PSCHED_NS2TICKS, cut to 32 bits).
pub fn tbf_buffer_ticks(rate: u64, burst: u32) -> u32 {
    let (mult, shift) = psched_mult_shift(rate);
    let ns = (u128::from(burst) * u128::from(mult)) >> shift;
    ((ns >> PSCHED_SHIFT) as u64).min(u64::from(u32::MAX)) as u32
}

/// A duration for tc: "100ms", "250us", "1s", or ns.
pub fn duration_text(ns: u64) -> String {
    match ns {
        0 => "0ms".into(),
        n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}us", n / 1_000),
        n => format!("{n}ns"),
    }
}

/// A rate for tc, bits per second in the largest unit that keeps it whole: "10mbit".
pub fn rate_text(bits: u64) -> String {
    match bits {
        0 => "0bit".into(),
        b if b % 1_000_000_000 == 0 => format!("{}gbit", b / 1_000_000_000),
        b if b % 1_000_000 == 0 => format!("{}mbit", b / 1_000_000),
        b if b % 1_000 == 0 => format!("{}kbit", b / 1_000),
        b => format!("{b}bit"),
    }
}

/// The longest delay, jitter or latency a lab may ask for: an hour.
pub const MAX_DURATION_NS: u64 = 3_600_000_000_000;

/// "100ms", "1.5s", "250us", "800ns" (tc's units): nanoseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(|| {
        format!("{text:?} needs its unit, as tc writes it: \"100ms\", \"1s\", \"250us\" (a number alone is ms)")
    })?;
    let (number, unit) = t.split_at(split);
    let scale = match unit.to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" => 1e9,
        "ms" | "msec" | "msecs" => 1e6,
        "us" | "usec" | "usecs" => 1e3,
        "ns" | "nsec" | "nsecs" => 1.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, ms, us, ns)")),
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("{text:?} is not a duration (\"100ms\")"))?;
    ns_in_range(value * scale, text)
}

/// A number of milliseconds: nanoseconds.
pub fn duration_from_ms(ms: f64) -> Result<u64, String> {
    ns_in_range(ms * 1e6, &format!("{ms}"))
}

fn ns_in_range(ns: f64, text: &str) -> Result<u64, String> {
    if !ns.is_finite() || ns < 0.0 || ns > MAX_DURATION_NS as f64 {
        return Err(format!("{text} is outside 0 to an hour"));
    }
    Ok(ns.round() as u64)
}

/// "1%", "0.5%", or a number: a percentage from 0 to 100.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("{text:?} is a percentage with its sign, \"1%\", or a number (1 is 1%)"))?;
    let value: f64 = number.trim().parse().map_err(|_| format!("{text:?} is not a percentage (\"1%\")"))?;
    percent_in_range(value)
}

pub fn percent_in_range(value: f64) -> Result<f64, String> {
    if !value.is_finite() || !(0.0..=100.0).contains(&value) {
        return Err(format!("{value}% is outside 0% to 100%"));
    }
    Ok(value)
}

/// tc's rate units (tc(8), "RATES"): bits per second for bit, kbit, mbit, gbit, tbit
/// and their binary kibit..., bytes per second for Bps, KBps, MBps... Case does not
/// matter, as in tc.
const RATE_UNITS: &[(&str, f64)] = &[
    ("bit", 1.),
    ("kibit", 1024.),
    ("kbit", 1000.),
    ("mibit", 1024. * 1024.),
    ("mbit", 1e6),
    ("gibit", 1024. * 1024. * 1024.),
    ("gbit", 1e9),
    ("tibit", 1024. * 1024. * 1024. * 1024.),
    ("tbit", 1e12),
    ("bps", 8.),
    ("kibps", 8. * 1024.),
    ("kbps", 8000.),
    ("mibps", 8. * 1024. * 1024.),
    ("mbps", 8e6),
    ("gibps", 8. * 1024. * 1024. * 1024.),
    ("gbps", 8e9),
];

/// The fastest rate a lab may give: 1 tbit/s.
pub const MAX_RATE: u64 = 1_000_000_000_000;

/// "10mbit", "1.5gbit", "500kbit", "1MBps": bits per second (at least 8, a byte a second).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("{text:?} needs its unit, as tc writes it: \"10mbit\", \"500kbit\", \"1gbit\""))?;
    let (number, unit) = t.split_at(split);
    let unit = unit.to_ascii_lowercase();
    let scale = RATE_UNITS.iter().find(|(u, _)| *u == unit).map(|(_, s)| *s).ok_or_else(|| {
        format!("{text:?}: unknown unit {unit:?} (bit, kbit, mbit, gbit, or bytes: Bps, KBps, MBps, as tc)")
    })?;
    let value: f64 = number.trim().parse().map_err(|_| format!("{text:?} is not a rate (\"10mbit\")"))?;
    let bits = value * scale;
    if !bits.is_finite() || bits < 8.0 || bits > MAX_RATE as f64 {
        return Err(format!("{text} is outside 8bit (a byte a second) to 1tbit"));
    }
    Ok(bits.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_as_tc_reads_them() {
        assert_eq!(parse_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration("250us"), Ok(250_000));
        assert!(parse_duration("100").unwrap_err().contains("needs its unit"));
        assert!(parse_duration("5min").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("-1ms").is_err());
        assert!(parse_duration("2h").is_err());
        assert_eq!(parse_percent("1%"), Ok(1.0));
        assert_eq!(parse_percent("0.5 %"), Ok(0.5));
        assert!(parse_percent("1").is_err());
        assert!(parse_percent("101%").is_err());
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("10Mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("1MBps"), Ok(8_000_000));
        assert_eq!(parse_rate("1kibit"), Ok(1024));
        assert!(parse_rate("10").unwrap_err().contains("needs its unit"));
        assert!(parse_rate("10mb").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("1bit").is_err());
    }

    #[test]
    fn tc_commands() {
        let netem = Impairment {
            delay: Some(100_000_000),
            jitter: Some(10_000_000),
            loss: Some(1.0),
            reorder: Some(25.0),
            rate: Some(10_000_000),
            ..Default::default()
        };
        assert_eq!(netem.tc_args(), "netem delay 100ms 10ms loss 1% reorder 25% rate 10mbit");
        assert_eq!(netem.feature(), Feature::Netem);
        let tbf = Impairment { rate: Some(10_000_000), ..Default::default() };
        assert_eq!(tbf.tc_args(), "tbf rate 10mbit burst 12500 latency 50ms");
        assert_eq!(tbf.feature(), Feature::Tbf);
        assert_eq!(tbf.tbf_limit(), 62_500 + 12_500);
        let slow = Impairment { rate: Some(100_000), ..Default::default() };
        assert_eq!(slow.tbf_burst(), TBF_MIN_BURST);
    }

    #[test]
    fn what_tc_refuses_is_refused() {
        assert!(Impairment::default().validate().is_err());
        assert!(Impairment { jitter: Some(1), ..Default::default() }.validate().is_err());
        assert!(Impairment { reorder: Some(1.0), ..Default::default() }.validate().is_err());
        let both = Impairment { delay: Some(1), burst: Some(5000), rate: Some(8000), ..Default::default() };
        assert!(both.validate().is_err());
        assert!(Impairment { burst: Some(5000), ..Default::default() }.validate().is_err());
        assert!(Impairment { rate: Some(8000), ..Default::default() }.validate().is_ok());
    }

    #[test]
    fn read_back_as_the_kernel_keeps_it() {
        assert_eq!(probability(100.0), u32::MAX);
        assert_eq!(probability(1.0), 42_949_673, "rint(0.01 * UINT32_MAX), as tc");
        assert_eq!(percent(probability(1.0)), 1.0);
        assert_eq!(percent(probability(0.5)), 0.5);
        // 10 ms of 1.25 MB/s: 156250 ticks of 64 ns, and back 12500 bytes.
        let ticks = tbf_buffer_ticks(1_250_000, 12_500);
        assert!((156_249..=156_250).contains(&ticks), "{ticks}");
        assert_eq!(QdiscParams::burst(1_250_000, ticks), 12_500);
        assert_eq!(QdiscParams::latency_ns(1_250_000, 156_250, 75_000) / 1000, 50_000);
    }
}
