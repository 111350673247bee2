//! Sizes and durations as people write them (`"512MiB"`, `"1h 30m"`) and as proxkeep prints them.

use std::time::Duration;

/// Units used when rendering exact sizes into TOML (largest first within each family).
const SIZE_RENDER_UNITS: &[(&str, u64)] = &[
    ("EiB", 1 << 60),
    ("PiB", 1 << 50),
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("E", 1000_u64.pow(6)),
    ("P", 1000_u64.pow(5)),
    ("T", 1000_u64.pow(4)),
    ("G", 1000_u64.pow(3)),
    ("M", 1000_u64.pow(2)),
    ("k", 1000),
];

/// Units of [`duration_to_string`], largest first.
const DURATION_UNITS: &[(&str, u128)] = &[
    ("d", 86_400_000_000_000),
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

/// Splits a leading decimal number (`12`, `1.5`) off `s`: (integer digits, fraction digits, rest).
fn split_number(s: &str) -> Option<(&str, &str, &str)> {
    let digits = |t: &str| t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (int, rest) = s.split_at(digits(s));
    let Some(after_dot) = rest.strip_prefix('.') else {
        return (!int.is_empty()).then_some((int, "", rest));
    };
    let (frac, rest) = after_dot.split_at(digits(after_dot));
    (!int.is_empty() && !frac.is_empty()).then_some((int, frac, rest))
}

/// `int.frac * multiplier`, rounded down; `None` on overflow.
fn scale(int: &str, frac: &str, multiplier: u128) -> Option<u128> {
    let whole = int.parse::<u128>().ok()?.checked_mul(multiplier)?;
    // Digits beyond 18 are below any unit's resolution; dropping them keeps
    // `frac_value * multiplier` (< 10^18 * 2^60) far from overflowing.
    let frac = &frac[..frac.len().min(18)];
    if frac.is_empty() {
        return Some(whole);
    }
    let frac_value = frac.parse::<u128>().ok()?;
    let part = frac_value.checked_mul(multiplier)? / 10u128.pow(frac.len() as u32);
    whole.checked_add(part)
}

/// Bytes per `unit`: `""`/`B`, `k`/`KB` ... `E`/`EB` (powers of 1000), `Ki`/`KiB` ... `Ei`/`EiB` (powers of
/// 1024), case-insensitive.
fn size_multiplier(unit: &str) -> Option<u64> {
    let unit = unit.to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let (prefix, base) = match unit.strip_suffix('i') {
        Some(prefix) => (prefix, 1024_u64),
        None => (unit, 1000),
    };
    if prefix.is_empty() {
        return (base == 1000).then_some(1);
    }
    let power = "kmgtpe".find(prefix).filter(|_| prefix.len() == 1)? + 1;
    Some(base.pow(power as u32))
}

/// Parses a size: integer bytes (`"1048576"`) or a number with a unit: `k`/`K`/`KB`, `M`,
/// `G`, `T`, `P`, `E` (powers of 1000), `KiB` ... `EiB` (powers of 1024), `B`.
/// Units are case-insensitive, may be separated by spaces and the number may have a fraction
/// (`"1.5 GiB"`, rounded down to whole bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let expected = "expected a number with an optional unit such as 512MiB, 1G or 2 GiB";
    let Some((int, frac, rest)) = split_number(text) else {
        return Err(format!("invalid size `{s}`: {expected}"));
    };
    let unit = rest.trim_start();
    let Some(multiplier) = size_multiplier(unit) else {
        return Err(format!(
            "invalid size `{s}`: unknown unit `{unit}` (valid: B, k, M, G, T, P, E, KiB, MiB, GiB, TiB, PiB, EiB)"
        ));
    };
    scale(int, frac, u128::from(multiplier))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("invalid size `{s}`: too large"))
}

/// Human-readable size in binary units with one decimal: `"512 B"`, `"12.3 MiB"`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit_index = 0;
    let mut divisor: u128 = 1024;
    loop {
        // Rounded to tenths of the unit.
        let tenths = (u128::from(bytes) * 10 + divisor / 2) / divisor;
        if tenths < 10240 || unit_index == UNITS.len() - 1 {
            return format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit_index]);
        }
        unit_index += 1;
        divisor *= 1024;
    }
}

/// Exact TOML rendering of a size: `"1GiB"`, `"100M"`, or integer bytes.
pub fn size_to_toml(bytes: u64) -> toml::Value {
    let best = SIZE_RENDER_UNITS
        .iter()
        .filter(|&&(_, unit)| bytes != 0 && bytes.is_multiple_of(unit))
        .min_by_key(|&&(_, unit)| bytes / unit);
    match (best, i64::try_from(bytes)) {
        (Some(&(name, unit)), _) => toml::Value::String(format!("{}{name}", bytes / unit)),
        (None, Ok(n)) => toml::Value::Integer(n),
        (None, Err(_)) => toml::Value::String(format!("{bytes}B")),
    }
}

/// Parses a duration: a bare number of seconds (`"30"`, `"1.5"`) or jiff's friendly format, case-insensitive:
/// one or more number-unit pairs (`"500ms"`, `"30s"`, `"2m"`, `"1h 30m"`, `"1.5h"`, `"2 minutes"`, `"1d"`) with
/// units ns, us, ms, s, m (minutes), h, d, w and long forms like `sec`, `minutes`. Days are 24 hours.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration `{s}`: {why}");
    let mut text = s.trim().to_lowercase();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        text.push('s');
    }
    let span = text.parse::<jiff::Span>().map_err(|_| {
        // jiff knows the unit when "1<word>" parses: then the mistake is elsewhere.
        let unknown = text
            .split(|c: char| c.is_ascii_digit() || c.is_whitespace() || ".,".contains(c))
            .find(|w| !w.is_empty() && format!("1{w}").parse::<jiff::Span>().is_err());
        match unknown {
            Some(unit) => bad(&format!(
                "unknown unit `{unit}` (valid: ns, us, ms, s, m, h, d)"
            )),
            None => bad("expected e.g. 500ms, 30s, 2m, 1h or a number of seconds"),
        }
    })?;
    if span.is_negative() {
        return Err(bad("must not be negative"));
    }
    let exact = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| bad(&e.to_string()))?;
    Duration::try_from(exact).map_err(|_| bad("too large"))
}

/// Exact rendering of a duration with the largest unit that divides it: `"30s"`, `"2m"`.
pub fn duration_to_string(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let (name, unit) = DURATION_UNITS
        .iter()
        .find(|&&(_, unit)| nanos.is_multiple_of(unit))
        .expect("every duration is a whole number of nanoseconds");
    if nanos / unit > i64::MAX as u128 {
        // More nanoseconds than jiff reads in one unit (centuries): split off the seconds.
        return format!("{}s {}ns", d.as_secs(), d.subsec_nanos());
    }
    format!("{}{name}", nanos / unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes() {
        #[rustfmt::skip]
        let ok: &[(&str, u64)] = &[
            ("0", 0), ("1048576", 1_048_576), ("512B", 512), ("512 b", 512),
            ("10k", 10_000), ("10K", 10_000), ("10KB", 10_000), ("10kb", 10_000),
            ("100M", 100_000_000), ("1G", 1_000_000_000), ("2T", 2_000_000_000_000),
            ("1KiB", 1024), ("512MiB", 512 << 20), ("2 GiB", 2 << 30), ("1TiB", 1 << 40),
            ("1.5 KiB", 1536), ("0.5G", 500_000_000), ("  3 MiB  ", 3 << 20),
            ("1.0000000000000000000000000000000001 KiB", 1024),
            ("18446744073709551615", u64::MAX), ("15 PiB", 15 << 50),
        ];
        for &(s, n) in ok {
            assert_eq!(parse_size(s), Ok(n), "{s:?}");
        }
        for s in [
            "",
            "MiB",
            "-1",
            "1.",
            ".5G",
            "1..5G",
            "12 XB",
            "1 MiBs",
            "1e3",
            "18446744073709551616",
            "99999 PiB",
            "1 2",
        ] {
            assert!(parse_size(s).is_err(), "{s:?} parsed");
        }
        #[rustfmt::skip]
        let formatted: &[(u64, &str)] = &[
            (0, "0 B"), (512, "512 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
            (12_897_485, "12.3 MiB"), ((1 << 20) - 1, "1.0 MiB"), (1 << 30, "1.0 GiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for &(n, s) in formatted {
            assert_eq!(format_size(n), s, "{n}");
        }
        assert_eq!(size_to_toml(1 << 30), toml::Value::String("1GiB".into()));
        assert_eq!(
            size_to_toml(100_000_000),
            toml::Value::String("100M".into())
        );
        assert_eq!(size_to_toml(1_234_567), toml::Value::Integer(1_234_567));
        assert_eq!(size_to_toml(0), toml::Value::Integer(0));
    }

    #[test]
    fn durations() {
        #[rustfmt::skip]
        let ok: &[(&str, Duration)] = &[
            ("30", Duration::from_secs(30)), ("30s", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)), ("1h", Duration::from_secs(3600)),
            ("500ms", Duration::from_millis(500)), ("1h 30m", Duration::from_secs(5400)),
            ("1h30m", Duration::from_secs(5400)), ("1.5h", Duration::from_secs(5400)),
            ("2 minutes", Duration::from_secs(120)), ("1d", Duration::from_secs(86400)),
            ("250us", Duration::from_micros(250)), ("7ns", Duration::from_nanos(7)),
            ("0s", Duration::ZERO), (" 10 sec ", Duration::from_secs(10)),
        ];
        for &(s, d) in ok {
            assert_eq!(parse_duration(s), Ok(d), "{s:?}");
        }
        for s in [
            "",
            "s",
            "-5s",
            "5 parsecs",
            "1h 30",
            "1.s",
            "ten seconds",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?} parsed");
        }
        #[rustfmt::skip]
        let rendered: &[(Duration, &str)] = &[
            (Duration::from_secs(30), "30s"), (Duration::from_secs(120), "2m"),
            (Duration::from_secs(3600), "1h"), (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1500ms"), (Duration::from_secs(86400 * 2), "2d"),
            (Duration::ZERO, "0s"), (Duration::from_nanos(1), "1ns"),
        ];
        for &(d, s) in rendered {
            assert_eq!(duration_to_string(d), s);
        }
    }

    // (Sizes near u64::MAX round up to "16.0 EiB", which does not fit a u64 again.)
    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn plain_integers_parse(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }

        #[test]
        fn unit_sizes_parse(k in 0u64..100_000, unit in 0usize..SIZE_RENDER_UNITS.len()) {
            let (name, multiplier) = SIZE_RENDER_UNITS[unit];
            let parsed = parse_size(&format!("{k} {name}"));
            match k.checked_mul(multiplier) {
                Some(n) => prop_assert_eq!(parsed, Ok(n)),
                None => prop_assert!(parsed.unwrap_err().contains("too large")),
            }
        }

        #[test]
        fn formatted_sizes_parse_back_closely(n in 0u64..=15 << 60) {
            let text = format_size(n);
            let back = parse_size(&text).unwrap();
            if n < 1024 {
                prop_assert_eq!(back, n);
            } else {
                // one decimal in a unit of at least 1 => relative error <= 5%
                let error = (i128::from(back) - i128::from(n)).unsigned_abs();
                prop_assert!(error * 20 <= u128::from(n), "{} -> {} -> {}", n, text, back);
            }
        }

        #[test]
        fn exact_sizes_round_trip(n in prop_oneof![any::<u64>(), (0u64..1 << 20).prop_map(|k| k << 20)]) {
            let back = match size_to_toml(n) {
                toml::Value::String(s) => parse_size(&s).unwrap(),
                toml::Value::Integer(i) => i as u64,
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(back, n);
        }

        #[test]
        fn durations_round_trip(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            for d in [Duration::new(secs, nanos), Duration::from_secs(secs), Duration::from_millis(secs)] {
                prop_assert_eq!(parse_duration(&duration_to_string(d)), Ok(d));
            }
        }
    }
}
