//! Telling people about a run: one [`Report`] per run, sent to every configured channel whose `on` list holds
//! the run's outcome, plus the dead-man pings. When they go out is `crate::app::after_run`'s business.
//! Nothing here changes the backup's exit code: a failed delivery is logged (redacted) and returned.

pub mod deliver;
pub mod email;
pub mod report;
pub mod web;

pub use deliver::NotifyError;
pub use report::{Report, RunInfo, Status};

pub use crate::config::Channel;
use crate::config::{Config, NotifyConfig, PingConfig};
use crate::output::{Log, Redactor};
use deliver::{Http, HttpRequest, Outcome, with_retries};
use serde::Serialize;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use web::Ping;

/// What happened to one message on one channel.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub channel: String,
    pub kind: &'static str,
    /// `report`, or for pings `start` / `success` / `fail`.
    pub message: &'static str,
    pub ok: bool,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    /// Failed attempts that were retried (logged, not serialized).
    #[serde(skip)]
    pub retries: Vec<String>,
}

impl Delivery {
    /// `✓ email admin: sent (1 attempt)`, `✗ ping hc /fail: failed after 3 attempts: HTTP 500`.
    pub fn line(&self) -> String {
        let who = if self.channel == self.kind {
            self.kind.to_string()
        } else {
            format!("{} {}", self.kind, self.channel)
        };
        let what = match self.message {
            "report" => "",
            "start" => " /start",
            "fail" => " /fail",
            _ => " success",
        };
        let s = if self.attempts == 1 { "" } else { "s" };
        let tries = format!("{} attempt{s}", self.attempts);
        match &self.error {
            None => format!("✓ {who}{what}: sent ({tries})"),
            Some(e) => format!("✗ {who}{what}: failed after {tries}: {e}"),
        }
    }
}

/// The run's redactor: every secret of the configuration.
pub fn redactor(config: &Config) -> Redactor {
    let mut r = Redactor::default();
    for s in config.notify.secrets() {
        r.add(s);
    }
    // The passphrase is never put in a message on purpose; this keeps it out if some error ever quoted it.
    if let Some(enc) = &config.encryption
        && let Some(p) = &enc.passphrase_file
        && let Ok(pass) = crate::crypt::read_passphrase_file(p)
    {
        use age::secrecy::ExposeSecret;
        r.add(pass.expose_secret());
    }
    r
}

/// Send `items` one after the other with `send`, retrying each, all within the channel's budget.
fn within_budget<T>(
    ch: Channel<'_>,
    items: impl IntoIterator<Item = T>,
    send: impl Fn(&T, Duration) -> Result<(), NotifyError>,
) -> Outcome {
    let common = ch.parts().1;
    let deadline = Instant::now() + common.retry_budget;
    let mut total = Outcome::none(Ok(()));
    for item in items {
        let o = with_retries(deadline, common.timeout, |t| send(&item, t));
        total.attempts += o.attempts;
        total.retries.extend(o.retries);
        if o.result.is_err() {
            total.result = o.result;
            break;
        }
    }
    total
}

fn send_http(ch: Channel<'_>, requests: Vec<HttpRequest>) -> Outcome {
    match Http::new(ch.parts().1.ca_file) {
        Ok(http) => within_budget(ch, requests, |req, t| http.send(req, t)),
        Err(e) => Outcome::none(Err(e)),
    }
}

fn delivery(ch: Channel<'_>, message: &'static str, started: Instant, o: Outcome) -> Delivery {
    let (kind, common) = ch.parts();
    Delivery {
        channel: common.name.to_string(),
        kind,
        message,
        ok: o.result.is_ok(),
        attempts: o.attempts,
        error: o.result.err().map(|e| e.to_string()),
        duration_ms: started.elapsed().as_millis() as u64,
        retries: o.retries,
    }
}

/// Send the report to one channel (the caller decided it wants it); a ping says how the run went.
pub fn send(ch: Channel<'_>, r: &Report, log_tail: &[String]) -> Delivery {
    let started = Instant::now();
    let outcome = match ch {
        Channel::Email(c) => match email::message(c, r) {
            Ok(msg) => within_budget(ch, [msg], |m, t| email::send(c, m, t)),
            Err(e) => Outcome::none(Err(e)),
        },
        Channel::Telegram(c) => send_http(ch, web::telegram(c, r)),
        Channel::Gotify(c) => send_http(ch, vec![web::gotify(c, r)]),
        Channel::Ntfy(c) => send_http(ch, vec![web::ntfy(c, r)]),
        Channel::Webhook(c) => send_http(ch, vec![web::webhook(c, r)]),
        Channel::Ping(c) => return ping(c, Ping::for_status(c, r.status), log_tail),
    };
    delivery(ch, "report", started, outcome)
}

pub fn ping(c: &PingConfig, kind: Ping, log_tail: &[String]) -> Delivery {
    let started = Instant::now();
    let ch = Channel::Ping(c);
    let outcome = send_http(ch, vec![web::ping(c, kind, log_tail)]);
    delivery(ch, kind.name(), started, outcome)
}

/// The `/start` ping of every ping channel that wants one, each on its own thread (a slow ping service must
/// never delay the backup).
pub fn start_pings(n: &NotifyConfig) -> Vec<JoinHandle<Delivery>> {
    n.ping
        .iter()
        .filter(|p| p.start)
        .cloned()
        .map(|p| std::thread::spawn(move || ping(&p, Ping::Start, &[])))
        .collect()
}

/// Send to all `selected` channels at once (each has its own budget; the slowest bounds the wait), log
/// every delivery.
fn send_all(log: &Log, selected: &[Channel<'_>], r: &Report, tail: &[String]) -> Vec<Delivery> {
    std::thread::scope(|s| {
        let handles: Vec<_> = selected
            .iter()
            .map(|ch| s.spawn(move || send(*ch, r, tail)))
            .collect();
        let panicked = |ch| {
            let e = NotifyError::Setup("the sending thread panicked".into());
            delivery(ch, "report", Instant::now(), Outcome::none(Err(e)))
        };
        handles
            .into_iter()
            .zip(selected)
            .map(|(h, ch)| record(log, h.join().unwrap_or_else(|_| panicked(*ch))))
            .collect()
    })
}

/// Log a delivery (redacted by the log) and scrub its error for `--json`.
pub fn record(log: &Log, mut d: Delivery) -> Delivery {
    for r in &d.retries {
        log.warn(&format!("notify {} {}: {r}", d.kind, d.channel));
    }
    d.error = d.error.map(|e| log.redactor().apply(&e));
    d.retries = d.retries.iter().map(|r| log.redactor().apply(r)).collect();
    let line = format!("notify {}", d.line().trim_start_matches(['✓', '✗', ' ']));
    match d.ok {
        true => log.info(&line),
        false => log.warn(&format!("{line} (the backup's exit code is unchanged)")),
    }
    d
}

/// Send the (redacted) report of a finished run to every channel whose `on` wants it, with the log's tail.
pub fn send_report(n: &NotifyConfig, log: &Log, report: &Report) -> Vec<Delivery> {
    let all = n.channels();
    let mut selected = all.clone();
    selected.retain(|c| c.wants(report.event));
    if !all.is_empty() {
        let (status, event) = (report.status.word(), report.event.name());
        let (n, of) = (selected.len(), all.len());
        let line = format!("notify: run {status} ({event}): {n} of {of} channels");
        log.debug(&line);
    }
    send_all(log, &selected, report, &log.tail())
}

/// A drill's report: to the report channels whose `on` wants it, never to the pings. A ping channel watches
/// the backup schedule (a dead-man switch): a drill's success must not stand in for a backup that did not run.
pub fn send_drill_report(n: &NotifyConfig, log: &Log, report: &Report) -> Vec<Delivery> {
    let mut selected = n.channels();
    selected.retain(|c| !matches!(c, Channel::Ping(_)) && c.wants(report.event));
    send_all(log, &selected, report, &log.tail())
}

/// `proxkeep notify test`: the sample report to every channel (or only `only`), regardless of `on`.
/// Pings send a success ping. Returns `None` when `only` names no channel.
pub fn test(
    config: &Config,
    log: &Log,
    run: &RunInfo,
    only: Option<&str>,
) -> Option<Vec<Delivery>> {
    let mut selected = config.notify.channels();
    selected.retain(|c| only.is_none_or(|o| c.name() == o));
    if only.is_some() && selected.is_empty() {
        return None;
    }
    let mut report = Report::sample(run);
    report.redact(log.redactor());
    let tail = ["proxkeep notify test".to_string()];
    Some(send_all(log, &selected, &report, &tail))
}
