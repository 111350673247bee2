//! Which archives a tier keeps: a pure function over (archives, policy, now), as Proxmox Backup Server prunes.
//!
//! Semantics (PBS `compute_prune_info`): keep-last first, then the hourly, daily, weekly (ISO week), monthly and
//! yearly buckets in that order, each walking the archives newest first; an archive kept by an earlier rule fills
//! its bucket for the later ones. Safety rules on top, because a retention run must never eat the good backups:
//! the newest verified archive is always kept, an archive that failed verification never fills a bucket and is
//! never removed (it is listed for the admin), and archives dated in the future (clock skew) are kept.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::HashSet;

pub use crate::config::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verified {
    /// Read back completely and found intact.
    Ok,
    /// Not (yet) verified: counts like an intact archive.
    Unknown,
    /// The last verification found damage.
    Failed,
}

impl Verified {
    /// From the recorded read-back of an archive (`Some(ok)`), or none.
    pub fn from_record(ok: Option<bool>) -> Verified {
        match ok {
            Some(true) => Verified::Ok,
            Some(false) => Verified::Failed,
            None => Verified::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub time: Timestamp,
    pub verified: Verified,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", content = "reason", rename_all = "lowercase")]
pub enum Decision {
    /// Kept, with the rule(s) that keep it (`keep_daily 2026-11-27`).
    Keep(String),
    Remove,
    /// Not removed and not counted: listed so an admin looks at it.
    Damaged,
}

impl Decision {
    pub fn is_remove(&self) -> bool {
        matches!(self, Decision::Remove)
    }
}

impl Policy {
    /// The archive rules as (key, value), in the order they apply (keep_safety is not one of them).
    pub fn rules(&self) -> [(&'static str, u32); 6] {
        [
            ("keep_last", self.keep_last),
            ("keep_hourly", self.keep_hourly),
            ("keep_daily", self.keep_daily),
            ("keep_weekly", self.keep_weekly),
            ("keep_monthly", self.keep_monthly),
            ("keep_yearly", self.keep_yearly),
        ]
    }

    /// Every archive rule is 0: nothing is ever removed.
    pub fn keeps_everything(&self) -> bool {
        self.rules().iter().all(|(_, n)| *n == 0)
    }

    /// The most archives the rules can keep (plus the newest intact one, always kept); `None`: all of them.
    pub fn keeps_at_most(&self) -> Option<u64> {
        let sum = self.rules().iter().map(|(_, n)| u64::from(*n)).sum();
        (!self.keeps_everything()).then_some(sum)
    }

    /// `keep_last 3, keep_daily 7, ...` (the keys that are not 0), as `config show` names them.
    pub fn describe(&self) -> String {
        if self.keeps_everything() {
            return "every archive (all keep_* are 0)".into();
        }
        let keys: Vec<String> = self
            .rules()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        keys.join(", ")
    }
}

/// The effective policy of every tier, labelled as `prune --tier` names them: `[retention]` for the local
/// one, with each tier's own keys on top for the others.
pub fn tier_policies(config: &crate::config::Config) -> Vec<(String, Policy)> {
    let base = &config.retention;
    let secondary = config
        .secondary
        .iter()
        .map(|s| (format!("secondary:{}", s.name), s.policy(base)));
    let remote = config
        .remote
        .iter()
        .map(|r| (format!("remote:{}", r.name), r.policy(base)));
    std::iter::once(("local".to_string(), *base))
        .chain(secondary)
        .chain(remote)
        .collect()
}

/// Restore-safety archives: the newest `keep` intact ones are kept (all of them when `keep` is 0); one that
/// failed verification is never removed. Newest first, like [`plan`].
pub fn plan_safety(candidates: &[Candidate], keep: u32) -> Vec<(Candidate, Decision)> {
    let mut list: Vec<Candidate> = candidates.to_vec();
    list.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    let mut taken = 0u32;
    list.into_iter()
        .map(|c| {
            let d = if c.verified == Verified::Failed {
                Decision::Damaged
            } else if keep == 0 || taken < keep {
                taken += 1;
                Decision::Keep(format!("keep_safety {taken}"))
            } else {
                Decision::Remove
            };
            (c, d)
        })
        .collect()
}

/// The plan: every candidate with its decision, newest first.
pub fn plan(
    candidates: &[Candidate],
    policy: &Policy,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<(Candidate, Decision)> {
    let mut list: Vec<Candidate> = candidates.to_vec();
    list.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    let mut marks: Vec<Option<Decision>> = vec![None; list.len()];

    for (i, c) in list.iter().enumerate() {
        if c.verified == Verified::Failed {
            marks[i] = Some(Decision::Damaged);
        } else if c.time > now {
            marks[i] = Some(Decision::Keep("dated in the future (clock skew?)".into()));
        }
    }
    if policy.keeps_everything() {
        for m in marks.iter_mut().filter(|m| m.is_none()) {
            *m = Some(Decision::Keep("no retention policy".into()));
        }
        return list.into_iter().zip(marks.into_iter().flatten()).collect();
    }

    // Each rule with the time format of its bucket; keep_last's bucket is the archive itself.
    let formats = ["", "%Y-%m-%dT%H", "%Y-%m-%d", "%G-W%V", "%Y-%m", "%Y"];
    for ((name, keep), format) in policy.rules().into_iter().zip(formats) {
        let bucket = |c: &Candidate| match format {
            "" => c.id.clone(),
            f => tz.to_datetime(c.time).strftime(f).to_string(),
        };
        if keep == 0 {
            continue;
        }
        // Buckets already filled by archives an earlier rule kept.
        let mut filled: HashSet<String> = list
            .iter()
            .zip(&marks)
            .filter(|(_, m)| matches!(m, Some(Decision::Keep(_))))
            .map(|(c, _)| bucket(c))
            .collect();
        let mut taken = 0u32;
        for (i, c) in list.iter().enumerate() {
            if marks[i].is_some() {
                continue;
            }
            let b = bucket(c);
            if filled.contains(&b) {
                continue;
            }
            if taken >= keep {
                break;
            }
            taken += 1;
            let reason = if name == "keep_last" {
                format!("keep_last {taken}")
            } else {
                format!("{name} {b}")
            };
            marks[i] = Some(Decision::Keep(reason));
            filled.insert(b);
        }
    }
    // The newest archive that is not known to be damaged is always kept.
    if let Some(i) = list.iter().position(|c| c.verified != Verified::Failed)
        && marks[i].is_none()
    {
        marks[i] = Some(Decision::Keep("newest intact archive".into()));
    }
    list.into_iter()
        .zip(marks.into_iter().map(|m| m.unwrap_or(Decision::Remove)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cands(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .map(|t| Candidate {
                id: t.to_string(),
                time: ts(t),
                verified: Verified::Ok,
            })
            .collect()
    }

    fn kept(plan: &[(Candidate, Decision)]) -> Vec<String> {
        let mut v: Vec<String> = plan
            .iter()
            .filter(|(_, d)| !d.is_remove())
            .map(|(c, _)| c.id.clone())
            .collect();
        v.sort();
        v
    }

    const NOW: &str = "2030-01-01T00:00:00Z";

    /// The example of the PBS prune simulator docs: several backups a day, keep-daily picks the newest of each day.
    #[test]
    fn keep_daily_takes_the_newest_of_each_day() {
        let c = cands(&[
            "2026-11-25T03:00:00Z",
            "2026-11-25T15:00:00Z",
            "2026-11-26T03:00:00Z",
            "2026-11-26T15:00:00Z",
            "2026-11-27T03:00:00Z",
        ]);
        let p = plan(
            &c,
            &Policy {
                keep_daily: 2,
                ..Default::default()
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        assert_eq!(
            kept(&p),
            vec!["2026-11-26T15:00:00Z", "2026-11-27T03:00:00Z"]
        );
        let reasons: Vec<_> = p.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(reasons[0], Decision::Keep("keep_daily 2026-11-27".into()));
    }

    #[test]
    fn keep_last_fills_buckets_for_later_rules() {
        // keep_last 2 keeps both of 11-27; keep_daily 2 then takes 11-26 and 11-25 (11-27's bucket is filled).
        let c = cands(&[
            "2026-11-25T03:00:00Z",
            "2026-11-26T03:00:00Z",
            "2026-11-27T03:00:00Z",
            "2026-11-27T15:00:00Z",
        ]);
        let p = plan(
            &c,
            &Policy {
                keep_last: 2,
                keep_daily: 2,
                ..Default::default()
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        assert_eq!(kept(&p).len(), 4);
        let p = plan(
            &c,
            &Policy {
                keep_last: 1,
                keep_daily: 1,
                ..Default::default()
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        // keep_last 1 → 11-27T15 (fills day 11-27); keep_daily 1 → 11-26.
        assert_eq!(
            kept(&p),
            vec!["2026-11-26T03:00:00Z", "2026-11-27T15:00:00Z"]
        );
    }

    #[test]
    fn weekly_uses_iso_weeks_and_yearly_the_calendar_year() {
        // 2024-12-30 is in ISO week 2025-W01, like 2025-01-01.
        let c = cands(&[
            "2024-12-29T12:00:00Z",
            "2024-12-30T12:00:00Z",
            "2025-01-01T12:00:00Z",
        ]);
        let p = plan(
            &c,
            &Policy {
                keep_weekly: 5,
                ..Default::default()
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        assert_eq!(
            kept(&p),
            vec!["2024-12-29T12:00:00Z", "2025-01-01T12:00:00Z"]
        );
        assert!(
            p.iter()
                .any(|(_, d)| *d == Decision::Keep("keep_weekly 2025-W01".into()))
        );
        let p = plan(
            &c,
            &Policy {
                keep_yearly: 5,
                ..Default::default()
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        assert_eq!(
            kept(&p),
            vec!["2024-12-30T12:00:00Z", "2025-01-01T12:00:00Z"]
        );
    }

    #[test]
    fn buckets_follow_the_given_time_zone() {
        // 23:30 UTC on the 26th is the 27th in Berlin: both fall into one Berlin day.
        let c = cands(&["2026-11-26T23:30:00Z", "2026-11-27T10:00:00Z"]);
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or(TimeZone::fixed(jiff::tz::offset(1)));
        let p = plan(
            &c,
            &Policy {
                keep_daily: 5,
                ..Default::default()
            },
            ts(NOW),
            &berlin,
        );
        assert_eq!(kept(&p), vec!["2026-11-27T10:00:00Z"]);
        let p = plan(
            &c,
            &Policy {
                keep_daily: 5,
                ..Default::default()
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        assert_eq!(kept(&p).len(), 2);
    }

    #[test]
    fn safety_archives_keep_the_newest_n_and_never_a_damaged_one() {
        let mut c = cands(&[
            "2026-11-25T03:00:00Z",
            "2026-11-26T03:00:00Z",
            "2026-11-27T03:00:00Z",
        ]);
        c[0].verified = Verified::Failed;
        let p = plan_safety(&c, 1);
        let d: Vec<_> = p.iter().map(|(_, d)| d.clone()).collect();
        assert_eq!(
            d,
            vec![
                Decision::Keep("keep_safety 1".into()),
                Decision::Remove,
                Decision::Damaged
            ]
        );
        assert!(plan_safety(&c, 0).iter().all(|(_, d)| !d.is_remove()));
        let p = Policy::default();
        assert_eq!(
            (p.keeps_at_most(), p.describe().as_str()),
            (None, "every archive (all keep_* are 0)")
        );
        let p = Policy {
            keep_last: 1,
            keep_daily: 1,
            ..Default::default()
        };
        assert_eq!(
            (p.keeps_at_most(), p.describe().as_str()),
            (Some(2), "keep_last 1, keep_daily 1")
        );
    }

    #[test]
    fn all_zero_keeps_everything() {
        let c = cands(&["2026-11-25T03:00:00Z", "2026-11-26T03:00:00Z"]);
        let p = plan(&c, &Policy::default(), ts(NOW), &TimeZone::UTC);
        assert!(p.iter().all(|(_, d)| !d.is_remove()));
    }

    #[test]
    fn damaged_archives_are_never_removed_and_never_fill_a_bucket() {
        let mut c = cands(&["2026-11-26T03:00:00Z", "2026-11-27T03:00:00Z"]);
        c[1].verified = Verified::Failed;
        let p = plan(
            &c,
            &Policy {
                keep_last: 1,
                ..Default::default()
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        assert_eq!(p[0].1, Decision::Damaged);
        assert_eq!(p[1].1, Decision::Keep("keep_last 1".into()));
    }

    #[test]
    fn newest_intact_archive_is_kept_even_when_no_rule_keeps_it() {
        // keep_yearly 1 picks the newest of the year anyway; use monthly on an old bucket to show the rule.
        let c = cands(&["2026-11-26T03:00:00Z", "2026-11-27T03:00:00Z"]);
        let p = plan(
            &c,
            &Policy {
                keep_hourly: 0,
                keep_last: 0,
                keep_daily: 0,
                keep_weekly: 0,
                keep_monthly: 0,
                keep_yearly: 1,
                keep_safety: 0,
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        assert_eq!(kept(&p), vec!["2026-11-27T03:00:00Z"]);
        let future = cands(&["2031-01-01T00:00:00Z", "2026-11-27T03:00:00Z"]);
        let p = plan(
            &future,
            &Policy {
                keep_last: 1,
                ..Default::default()
            },
            ts(NOW),
            &TimeZone::UTC,
        );
        assert_eq!(kept(&p).len(), 2, "{p:?}");
    }

    /// Two simulated years of daily backups at 03:00: exactly the expected count per bucket.
    #[test]
    fn two_years_of_dailies() {
        let start = ts("2025-01-01T03:00:00Z");
        let c: Vec<Candidate> = (0..730)
            .map(|d| {
                let t = start
                    .checked_add(jiff::SignedDuration::from_hours(24 * d))
                    .unwrap();
                Candidate {
                    id: format!("{d:04}"),
                    time: t,
                    verified: Verified::Ok,
                }
            })
            .collect();
        let now = ts("2026-12-31T12:00:00Z");
        let policy = Policy {
            keep_last: 3,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            keep_yearly: 2,
            keep_hourly: 0,
            keep_safety: 0,
        };
        let p = plan(&c, &policy, now, &TimeZone::UTC);
        let count = |prefix: &str| {
            p.iter()
                .filter(|(_, d)| matches!(d, Decision::Keep(r) if r.starts_with(prefix)))
                .count()
        };
        assert_eq!(count("keep_last"), 3);
        assert_eq!(count("keep_daily"), 7);
        assert_eq!(count("keep_weekly"), 4);
        assert_eq!(count("keep_monthly"), 6);
        // 2026's yearly bucket is already filled by keep_last, so keep_yearly adds only 2025 (as PBS does).
        assert_eq!(count("keep_yearly"), 1);
        assert_eq!(kept(&p).len(), 21);
        // The yearly of 2025 is its last day.
        assert!(p.iter().any(|(c, d)| c.time == ts("2025-12-31T03:00:00Z")
            && *d == Decision::Keep("keep_yearly 2025".into())));
    }

    fn arb_candidates() -> impl Strategy<Value = Vec<Candidate>> {
        proptest::collection::vec((0i64..400 * 86400, 0u8..10), 0..60).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (secs, f))| Candidate {
                    id: format!("a{i}"),
                    time: Timestamp::from_second(1_700_000_000 + secs).unwrap(),
                    verified: if f == 0 {
                        Verified::Failed
                    } else {
                        Verified::Ok
                    },
                })
                .collect()
        })
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        (0u32..4, 0u32..4, 0u32..8, 0u32..5, 0u32..7, 0u32..3).prop_map(|(l, h, d, w, m, y)| {
            Policy {
                keep_last: l,
                keep_hourly: h,
                keep_daily: d,
                keep_weekly: w,
                keep_monthly: m,
                keep_yearly: y,
                keep_safety: 0,
            }
        })
    }

    fn total(p: &Policy) -> u64 {
        [
            p.keep_last,
            p.keep_hourly,
            p.keep_daily,
            p.keep_weekly,
            p.keep_monthly,
            p.keep_yearly,
        ]
        .iter()
        .map(|n| u64::from(*n))
        .sum()
    }

    proptest! {
        #[test]
        fn properties(c in arb_candidates(), policy in arb_policy()) {
            let now = Timestamp::from_second(1_800_000_000).unwrap();
            let p = plan(&c, &policy, now, &TimeZone::UTC);
            prop_assert_eq!(p.len(), c.len());
            // The newest intact archive is always kept.
            if let Some(newest) = c.iter().filter(|x| x.verified != Verified::Failed).max_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id))) {
                prop_assert!(p.iter().any(|(x, d)| x.id == newest.id && matches!(d, Decision::Keep(_))));
            }
            // Damaged ones are never removed.
            prop_assert!(p.iter().all(|(x, d)| x.verified != Verified::Failed || *d == Decision::Damaged));
            // Number kept (intact) ≤ sum of keeps + 1.
            let kept_intact = p.iter().filter(|(_, d)| matches!(d, Decision::Keep(_))).count() as u64;
            if !policy.keeps_everything() {
                prop_assert!(kept_intact <= total(&policy) + 1, "{} > {}", kept_intact, total(&policy) + 1);
            }
            // Pruning the kept set again removes nothing.
            let survivors: Vec<Candidate> = p.iter().filter(|(_, d)| !d.is_remove()).map(|(x, _)| x.clone()).collect();
            let again = plan(&survivors, &policy, now, &TimeZone::UTC);
            prop_assert!(again.iter().all(|(_, d)| !d.is_remove()), "{:?}", again);
        }
    }
}
