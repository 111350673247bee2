//! Telling people about a run: one [`Report`] per run, sent to every configured channel whose `on` list holds
//! the run's outcome, plus the dead-man pings and the Prometheus textfile ([`crate::metrics`]).
//!
//! The lifecycle follows rustic's hooks: [`Hooks::begin`] before the backup (the `/start` pings go out on
//! their own threads, so a slow ping service never delays the backup), [`Hooks::finish`] after it, whatever
//! its outcome. Nothing here changes the backup's exit code: a failed delivery is logged (redacted), shown in
//! `--json`, and counted in `proxkeep_notify_failures`.

pub mod deliver;
pub mod email;
pub mod report;
pub mod web;

pub use deliver::NotifyError;
pub use report::{Report, RunInfo, Status};

use crate::config::{
    Config, EmailConfig, Event, GotifyConfig, NotifyConfig, NtfyConfig, PingConfig, TelegramConfig,
    WebhookConfig,
};
use crate::output::{Log, Redactor};
use deliver::{Http, HttpRequest, Outcome, with_retries};
use jiff::Timestamp;
use serde::Serialize;
use std::path::Path;
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
        let tries = if self.attempts == 1 {
            "1 attempt".to_string()
        } else {
            format!("{} attempts", self.attempts)
        };
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
    if let Some(p) = config
        .encryption
        .as_ref()
        .and_then(|e| e.passphrase_file.as_ref())
        && let Ok(pass) = crate::crypt::read_passphrase_file(p)
    {
        use age::secrecy::ExposeSecret;
        r.add(pass.expose_secret());
    }
    r
}

/// One configured channel.
#[derive(Debug, Clone, Copy)]
pub enum Channel<'a> {
    Email(&'a EmailConfig),
    Telegram(&'a TelegramConfig),
    Gotify(&'a GotifyConfig),
    Ntfy(&'a NtfyConfig),
    Webhook(&'a WebhookConfig),
    Ping(&'a PingConfig),
}

impl Channel<'_> {
    pub fn name(&self) -> &str {
        match self {
            Channel::Email(c) => &c.common.name,
            Channel::Telegram(c) => &c.common.name,
            Channel::Gotify(c) => &c.common.name,
            Channel::Ntfy(c) => &c.common.name,
            Channel::Webhook(c) => &c.common.name,
            Channel::Ping(c) => &c.name,
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Email(_) => "email",
            Channel::Telegram(_) => "telegram",
            Channel::Gotify(_) => "gotify",
            Channel::Ntfy(_) => "ntfy",
            Channel::Webhook(_) => "webhook",
            Channel::Ping(_) => "ping",
        }
    }
    /// Whether a run with this outcome is reported here. Pings report every run: a missing ping is the alarm.
    pub fn wants(&self, e: Event) -> bool {
        match self {
            Channel::Email(c) => c.common.on.contains(&e),
            Channel::Telegram(c) => c.common.on.contains(&e),
            Channel::Gotify(c) => c.common.on.contains(&e),
            Channel::Ntfy(c) => c.common.on.contains(&e),
            Channel::Webhook(c) => c.common.on.contains(&e),
            Channel::Ping(_) => true,
        }
    }
    fn limits(&self) -> (Duration, Duration) {
        let c = match self {
            Channel::Email(c) => &c.common,
            Channel::Telegram(c) => &c.common,
            Channel::Gotify(c) => &c.common,
            Channel::Ntfy(c) => &c.common,
            Channel::Webhook(c) => &c.common,
            Channel::Ping(c) => return (c.timeout, c.retry_budget),
        };
        (c.timeout, c.retry_budget)
    }
    fn ca_file(&self) -> Option<&Path> {
        match self {
            Channel::Email(c) => c.ca_file.as_deref(),
            Channel::Telegram(c) => c.ca_file.as_deref(),
            Channel::Gotify(c) => c.ca_file.as_deref(),
            Channel::Ntfy(c) => c.ca_file.as_deref(),
            Channel::Webhook(c) => c.ca_file.as_deref(),
            Channel::Ping(c) => c.ca_file.as_deref(),
        }
    }
}

/// Every channel, in config order by kind.
pub fn channels(n: &NotifyConfig) -> Vec<Channel<'_>> {
    let mut v: Vec<Channel<'_>> = Vec::new();
    v.extend(n.email.iter().map(Channel::Email));
    v.extend(n.telegram.iter().map(Channel::Telegram));
    v.extend(n.gotify.iter().map(Channel::Gotify));
    v.extend(n.ntfy.iter().map(Channel::Ntfy));
    v.extend(n.webhook.iter().map(Channel::Webhook));
    v.extend(n.ping.iter().map(Channel::Ping));
    v
}

/// Send `requests` one after the other, all within one budget.
fn send_http(ch: Channel<'_>, requests: Vec<HttpRequest>) -> Outcome {
    let (timeout, budget) = ch.limits();
    let deadline = Instant::now() + budget;
    let http = match Http::new(ch.ca_file()) {
        Ok(h) => h,
        Err(e) => {
            return Outcome {
                attempts: 0,
                result: Err(e),
                retries: vec![],
            };
        }
    };
    let mut total = Outcome {
        attempts: 0,
        result: Ok(()),
        retries: vec![],
    };
    for req in requests {
        let o = with_retries(deadline, timeout, |t| http.send(&req, t).map(|_| ()));
        total.attempts += o.attempts;
        total.retries.extend(o.retries);
        if o.result.is_err() {
            total.result = o.result;
            break;
        }
    }
    total
}

fn delivery(ch: Channel<'_>, message: &'static str, started: Instant, o: Outcome) -> Delivery {
    Delivery {
        channel: ch.name().to_string(),
        kind: ch.kind(),
        message,
        ok: o.result.is_ok(),
        attempts: o.attempts,
        error: o.result.err().map(|e| e.to_string()),
        duration_ms: started.elapsed().as_millis() as u64,
        retries: o.retries,
    }
}

/// Send the report to one channel (the caller decided it wants it). `ping` overrides the ping kind.
pub fn send(ch: Channel<'_>, r: &Report, log_tail: &[String], ping: Option<Ping>) -> Delivery {
    let started = Instant::now();
    let (timeout, budget) = ch.limits();
    let (message, outcome) = match ch {
        Channel::Email(c) => {
            let o = match email::message(c, r) {
                Ok(msg) => with_retries(Instant::now() + budget, timeout, |t| {
                    email::send(c, &msg, t)
                }),
                Err(e) => Outcome {
                    attempts: 0,
                    result: Err(e),
                    retries: vec![],
                },
            };
            ("report", o)
        }
        Channel::Telegram(c) => ("report", send_http(ch, web::telegram(c, r))),
        Channel::Gotify(c) => ("report", send_http(ch, vec![web::gotify(c, r)])),
        Channel::Ntfy(c) => ("report", send_http(ch, vec![web::ntfy(c, r)])),
        Channel::Webhook(c) => ("report", send_http(ch, vec![web::webhook(c, r)])),
        Channel::Ping(c) => {
            let kind = ping.unwrap_or_else(|| Ping::for_status(c, r.status));
            (
                kind.name(),
                send_http(ch, vec![web::ping(c, kind, log_tail)]),
            )
        }
    };
    delivery(ch, message, started, outcome)
}

/// Send to all `selected` channels at once (each has its own budget; the slowest bounds the wait).
fn send_all(
    selected: &[Channel<'_>],
    r: &Report,
    tail: &[String],
    ping: Option<Ping>,
) -> Vec<Delivery> {
    std::thread::scope(|s| {
        let handles: Vec<_> = selected
            .iter()
            .map(|ch| s.spawn(move || send(*ch, r, tail, ping)))
            .collect();
        handles
            .into_iter()
            .zip(selected)
            .map(|(h, ch)| {
                h.join().unwrap_or_else(|_| Delivery {
                    channel: ch.name().into(),
                    kind: ch.kind(),
                    message: "report",
                    ok: false,
                    attempts: 0,
                    error: Some("the sending thread panicked".into()),
                    duration_ms: 0,
                    retries: vec![],
                })
            })
            .collect()
    })
}

/// Log a delivery (redacted by the log) and scrub its error for `--json`.
fn record(log: &Log, mut d: Delivery) -> Delivery {
    for r in &d.retries {
        log.warn(&format!("notify {} {}: {r}", d.kind, d.channel));
    }
    d.error = d.error.map(|e| log.redactor().apply(&e));
    d.retries = d.retries.iter().map(|r| log.redactor().apply(r)).collect();
    let line = d.line().trim_start_matches(['✓', '✗', ' ']).to_string();
    if d.ok {
        log.info(&format!("notify {line}"));
    } else {
        log.warn(&format!(
            "notify {line} (the backup's exit code is unchanged)"
        ));
    }
    d
}

/// Before and after one backup run.
pub struct Hooks {
    started: Timestamp,
    start_pings: Vec<JoinHandle<Delivery>>,
}

impl Hooks {
    /// The run starts: note the time and send every `/start` ping in the background.
    pub fn begin(config: &Config) -> Hooks {
        let started = Timestamp::now();
        let start_pings = config
            .notify
            .ping
            .iter()
            .filter(|p| p.start)
            .cloned()
            .map(|p| {
                std::thread::spawn(move || {
                    send(Channel::Ping(&p), &dummy_report(), &[], Some(Ping::Start))
                })
            })
            .collect();
        Hooks {
            started,
            start_pings,
        }
    }

    pub fn started(&self) -> Timestamp {
        self.started
    }

    /// The run ended with `report` (built by the caller from the outcome): send it, write the metrics.
    /// Appends to the run log when there is one. Returns every delivery, start pings included.
    pub fn finish(self, config: &Config, log: &Log, mut report: Report) -> Vec<Delivery> {
        let reattached = log.reattach();
        report.redact(log.redactor());
        let mut out: Vec<Delivery> = Vec::new();
        for h in self.start_pings {
            if let Ok(d) = h.join() {
                out.push(record(log, d));
            }
        }
        let all = channels(&config.notify);
        let selected: Vec<Channel<'_>> = all
            .iter()
            .copied()
            .filter(|c| c.wants(report.event))
            .collect();
        if !all.is_empty() {
            log.debug(&format!(
                "notify: run {} ({}): {} of {} channels",
                report.status.word(),
                report.event,
                selected.len(),
                all.len()
            ));
        }
        let tail = log.tail();
        for d in send_all(&selected, &report, &tail, None) {
            out.push(record(log, d));
        }
        if let Some(path) = &config.metrics.textfile {
            let failures = failures_by_channel(&config.notify, &out);
            match crate::metrics::write(path, &report, &failures) {
                Ok(()) => log.debug(&format!("metrics written to {}", path.display())),
                Err(e) => log.warn(&format!(
                    "cannot write the metrics textfile {}: {e}",
                    path.display()
                )),
            }
        }
        if reattached {
            log.detach();
        }
        out
    }
}

/// Failed deliveries per configured channel (0 for those that worked or were not due).
pub fn failures_by_channel(n: &NotifyConfig, d: &[Delivery]) -> Vec<(String, u32)> {
    n.channel_names()
        .into_iter()
        .map(|name| {
            let failed = d.iter().filter(|x| x.channel == name && !x.ok).count() as u32;
            (name, failed)
        })
        .collect()
}

/// Start pings carry no report; the builders need one all the same.
fn dummy_report() -> Report {
    let now = Timestamp::now();
    Report::sample(&RunInfo {
        host: String::new(),
        role: String::new(),
        started: now,
        ended: now,
    })
}

/// `proxkeep notify test`: the sample report to every channel (or only `only`), regardless of `on`.
/// Pings send a success ping. Returns `None` when `only` names no channel.
pub fn test(
    config: &Config,
    log: &Log,
    run: &RunInfo,
    only: Option<&str>,
) -> Option<Vec<Delivery>> {
    let all = channels(&config.notify);
    let selected: Vec<Channel<'_>> = all
        .iter()
        .copied()
        .filter(|c| only.is_none_or(|o| c.name() == o))
        .collect();
    if only.is_some() && selected.is_empty() {
        return None;
    }
    let mut report = Report::sample(run);
    report.redact(log.redactor());
    let tail = vec!["proxkeep notify test".to_string()];
    Some(
        send_all(&selected, &report, &tail, None)
            .into_iter()
            .map(|d| record(log, d))
            .collect(),
    )
}

impl Hooks {
    /// [`finish`](Self::finish) for `proxkeep backup`: the report is built from the run's outcome. Host and
    /// role come from the backup report, or (for a run that failed early) from the host itself.
    pub fn finish_backup(
        self,
        config: &Config,
        root: &crate::host::Root,
        log: &Log,
        outcome: &Result<crate::app::backup::BackupReport, crate::app::backup::BackupError>,
    ) -> Vec<Delivery> {
        let run = |host: String, role: String| RunInfo {
            host,
            role,
            started: self.started,
            ended: Timestamp::now(),
        };
        let report = match outcome {
            Ok(r) => Report::from_backup(r, &run(r.host.clone(), r.role.clone())),
            Err(e) => {
                let facts = crate::host::HostFacts::detect(root);
                Report::from_error(e, &run(facts.hostname, facts.role.to_string()))
            }
        };
        self.finish(config, log, report)
    }

    /// [`finish`](Self::finish) for a run stopped by its configuration (exit 2); `config` is the part of it
    /// that could be read ([`crate::config::load_reporting_only`]).
    pub fn finish_config_error(
        self,
        config: &Config,
        root: &crate::host::Root,
        log: &Log,
        message: &str,
    ) -> Vec<Delivery> {
        let facts = crate::host::HostFacts::detect(root);
        let run = RunInfo {
            host: facts.hostname,
            role: facts.role.to_string(),
            started: self.started,
            ended: Timestamp::now(),
        };
        let report = Report::config_error(message, &run);
        self.finish(config, log, report)
    }
}
