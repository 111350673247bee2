//! Plain-text tables for `list` and `verify --all`: columns padded to their widest cell, two spaces apart, no
//! trailing blanks (so output diffs and greps cleanly).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Render `rows` under `headers`. Widths count characters, not bytes (`→`, `✓` are one column).
pub fn render(headers: &[&str], align: &[Align], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut width: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for r in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (i, w) in width.iter().enumerate() {
            let cell = r.get(i).map(String::as_str).unwrap_or("");
            if i > 0 {
                line.push_str("  ");
            }
            // `fmt` pads by characters too.
            line += &match align.get(i) {
                Some(Align::Right) => format!("{cell:>w$}"),
                _ => format!("{cell:<w$}"),
            };
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A Unix time in the local time zone (`TZ`, else /etc/localtime), e.g. `2026-11-28 04:15:30`.
pub fn local_time(t: jiff::Timestamp, format: &str) -> String {
    t.to_zoned_datetime(jiff::tz::TimeZone::system())
        .strftime(format)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_aligns_and_trims() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string(), "ok".to_string()],
            vec!["longer→".to_string(), "1234".to_string(), "".to_string()],
        ];
        let t = render(
            &["NAME", "N", "STATE"],
            &[Align::Left, Align::Right, Align::Left],
            &rows,
        );
        assert_eq!(
            t,
            "NAME        N  STATE\na           1  ok\nlonger→  1234\n"
        );
    }

    #[test]
    fn local_time_uses_tz() {
        // jiff reads TZ when asked for the system zone; UTC is always available.
        let t = jiff::Timestamp::from_second(1_795_835_700).unwrap();
        let s = local_time(t, "%Y-%m-%d");
        assert!(
            s == "2026-11-28" || s == "2026-11-27" || s == "2026-11-29",
            "{s}"
        );
    }
}
