//! `[[notify.*]]` channels and `[metrics]`: parsed and validated here so `config.rs` only wires them in.
//!
//! ```toml
//! [metrics]
//! textfile = "/var/lib/prometheus/node-exporter/proxkeep.prom"
//!
//! [[notify.email]]                   # every channel: name, on, timeout, retry_budget
//! name = "admin"                     # default: the kind ("email"), then "email-2", ...
//! on = ["failure", "warning"]        # the default; add "success" for a mail every night
//! to = ["root@example.com"]
//! # from = "proxkeep@<host>"
//! # transport = "sendmail"           # default; "smtp" when `host` is set
//! # sendmail = "/usr/sbin/sendmail"  # default: `sendmail` on PATH, else /usr/sbin/sendmail
//! # host = "mail.example.com"
//! # port = 587                       # default by tls: starttls 587, tls 465, none 25
//! # tls = "starttls"                 # starttls | tls (implicit, "SMTPS") | none (local relay only)
//! # username = "alert"  password = "..."  ca_file = "/etc/proxkeep/mail-ca.pem"
//!
//! [[notify.telegram]]  bot_token, chat_id, api_url (default https://api.telegram.org), ca_file
//! [[notify.gotify]]    url (server), token (application token), ca_file
//! [[notify.ntfy]]      url (topic URL), token (optional access token), ca_file
//! [[notify.webhook]]   url, method (POST|PUT), headers = {..}, format (json|discord|slack), hmac_secret, ca_file
//! [[notify.ping]]      url, start (true), warning_as_failure (false), ca_file   -- no `on`: every run pings
//! ```
//!
//! Secrets (passwords, tokens, topic/webhook/ping URLs, header values, HMAC keys) are listed by
//! [`NotifyConfig::secrets`] so the run's redactor can keep them out of every line that leaves the process.

use super::{ConfigError, Ctx, IntOrStr, absolute_path, duration_value, ser_duration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// Which run outcomes a channel hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Failure,
    Warning,
    Success,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::Failure => "failure",
            Event::Warning => "warning",
            Event::Success => "success",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Keys shared by every channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Common {
    /// Unique among all channels: `--channel NAME`, log lines and the `channel` metric label use it.
    pub name: String,
    pub on: Vec<Event>,
    /// Limit of one attempt (connect + send + answer).
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Total time spent on this channel, retries included (the issue's "30 s budget per channel").
    #[serde(serialize_with = "ser_duration")]
    pub retry_budget: Duration,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRY_BUDGET: Duration = Duration::from_secs(30);
pub const DEFAULT_EVENTS: [Event; 2] = [Event::Failure, Event::Warning];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    Sendmail,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refuses to send if the server does not offer it.
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a trusted LAN.
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// `[[notify.email]]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmailConfig {
    #[serde(flatten)]
    pub common: Common,
    pub to: Vec<String>,
    /// Default `proxkeep@<host>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub transport: MailTransport,
    /// Sendmail program; default: `sendmail` found on PATH, else `/usr/sbin/sendmail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sendmail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// PEM file with the CA (or self-signed certificate) to trust instead of the system store.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_path"
    )]
    pub ca_file: Option<PathBuf>,
}

/// `[[notify.telegram]]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelegramConfig {
    #[serde(flatten)]
    pub common: Common,
    pub bot_token: String,
    /// A numeric chat id or `@channelname`, sent as given.
    pub chat_id: ChatId,
    /// Bot API base URL: a self-hosted Bot API server, or a test stand-in.
    pub api_url: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_path"
    )]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Id(i64),
    Name(String),
}

/// `[[notify.gotify]]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GotifyConfig {
    #[serde(flatten)]
    pub common: Common,
    /// Server base URL; messages go to `<url>/message`.
    pub url: String,
    /// Application token (sent as `X-Gotify-Key`, never in the URL).
    pub token: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_path"
    )]
    pub ca_file: Option<PathBuf>,
}

/// `[[notify.ntfy]]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NtfyConfig {
    #[serde(flatten)]
    pub common: Common,
    /// Topic URL (`https://ntfy.example/backups`): anyone who knows it can read, so it counts as a secret.
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_path"
    )]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The documented `proxkeep.report/1` JSON document (docs/monitoring.md).
    Json,
    /// `{"content": ...}` for a Discord webhook.
    Discord,
    /// `{"text": ...}` for a Slack (or Mattermost, Rocket.Chat) incoming webhook.
    Slack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpMethod {
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "PUT")]
    Put,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
        }
    }
}

/// `[[notify.webhook]]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookConfig {
    #[serde(flatten)]
    pub common: Common,
    /// Often a secret itself (Discord and Slack webhook URLs are).
    pub url: String,
    pub method: HttpMethod,
    pub format: WebhookFormat,
    /// Extra request headers (e.g. `Authorization`); their values are treated as secrets.
    pub headers: BTreeMap<String, String>,
    /// Key of the `X-Proxkeep-Signature: sha256=<hex>` header (HMAC-SHA256 over the exact body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_path"
    )]
    pub ca_file: Option<PathBuf>,
}

/// `[[notify.ping]]`: a dead-man switch (Healthchecks.io and compatible).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PingConfig {
    pub name: String,
    /// Check URL: `<url>/start`, `<url>`, `<url>/fail` are derived from it. The UUID in it is the secret.
    pub url: String,
    /// Ping `<url>/start` when the run begins (lets the service measure run time and notice hung runs).
    pub start: bool,
    /// Report runs with warnings as failures (default: a written, verified archive is a success).
    pub warning_as_failure: bool,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub retry_budget: Duration,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_path"
    )]
    pub ca_file: Option<PathBuf>,
}

/// `[notify]`: every channel, by kind.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct NotifyConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub email: Vec<EmailConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub telegram: Vec<TelegramConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gotify: Vec<GotifyConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ntfy: Vec<NtfyConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook: Vec<WebhookConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ping: Vec<PingConfig>,
}

impl NotifyConfig {
    pub fn is_empty(&self) -> bool {
        self.channel_names().is_empty()
    }

    /// Every channel's name, in the order channels are listed (email, telegram, gotify, ntfy, webhook, ping).
    pub fn channel_names(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        v.extend(self.email.iter().map(|c| c.common.name.clone()));
        v.extend(self.telegram.iter().map(|c| c.common.name.clone()));
        v.extend(self.gotify.iter().map(|c| c.common.name.clone()));
        v.extend(self.ntfy.iter().map(|c| c.common.name.clone()));
        v.extend(self.webhook.iter().map(|c| c.common.name.clone()));
        v.extend(self.ping.iter().map(|c| c.name.clone()));
        v
    }

    /// Values that must never appear in a log line, an error or `--json` output.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let url = |u: &str, whole: bool, out: &mut Vec<String>| {
            if whole {
                out.push(u.to_string());
            }
            out.extend(url_password(u));
        };
        for c in &self.email {
            out.extend(c.password.clone());
        }
        for c in &self.telegram {
            out.push(c.bot_token.clone());
            url(&c.api_url, false, &mut out);
        }
        for c in &self.gotify {
            out.push(c.token.clone());
            url(&c.url, false, &mut out);
        }
        for c in &self.ntfy {
            out.extend(c.token.clone());
            url(&c.url, true, &mut out);
        }
        for c in &self.webhook {
            url(&c.url, true, &mut out);
            out.extend(c.headers.values().cloned());
            out.extend(c.hmac_secret.clone());
        }
        for c in &self.ping {
            url(&c.url, true, &mut out);
            // The part after the host alone (Healthchecks' UUID or `ping-key/slug`) gives the check away too.
            if let Some(path) = url_path(&c.url) {
                out.push(path);
            }
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct MetricsConfig {
    /// Prometheus textfile (node_exporter's textfile collector). Unset: no metrics are written.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opt_path"
    )]
    pub textfile: Option<PathBuf>,
}

fn ser_opt_path<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_str(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

/// The password of `scheme://user:password@host/...`, if any.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo
        .split_once(':')
        .map(|(_, p)| p.to_string())
        .filter(|p| !p.is_empty())
}

/// The path of a URL without the leading slash, when it is long enough to be a secret.
fn url_path(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let path = rest.split_once('/')?.1;
    let path = path.split(['?', '#']).next()?.trim_matches('/');
    (path.len() >= 8).then(|| path.to_string())
}

// ---------------------------------------------------------------------------------------------
// Raw structs and validation
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    email: Option<Vec<Spanned<RawEmail>>>,
    telegram: Option<Vec<Spanned<RawTelegram>>>,
    gotify: Option<Vec<Spanned<RawGotify>>>,
    ntfy: Option<Vec<Spanned<RawNtfy>>>,
    webhook: Option<Vec<Spanned<RawWebhook>>>,
    ping: Option<Vec<Spanned<RawPing>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    textfile: Option<Spanned<PathBuf>>,
}

/// Keys every channel table has (spelled out in each struct: `Spanned` does not survive `flatten`).
macro_rules! raw_channel {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            name: Option<Spanned<String>>,
            on: Option<Vec<Spanned<String>>>,
            timeout: Option<Spanned<IntOrStr>>,
            retry_budget: Option<Spanned<IntOrStr>>,
            ca_file: Option<Spanned<PathBuf>>,
            $($field: $ty),*
        }
    };
}

raw_channel!(RawEmail {
    to: Option<Spanned<Vec<Spanned<String>>>>,
    from: Option<Spanned<String>>,
    transport: Option<MailTransport>,
    sendmail: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<i64>>,
    tls: Option<SmtpTls>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
});
raw_channel!(RawTelegram {
    bot_token: Option<Spanned<String>>,
    chat_id: Option<Spanned<ChatId>>,
    api_url: Option<Spanned<String>>,
});
raw_channel!(RawGotify {
    url: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
});
raw_channel!(RawNtfy {
    url: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
});
raw_channel!(RawWebhook {
    url: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    format: Option<WebhookFormat>,
    headers: Option<Spanned<BTreeMap<String, String>>>,
    hmac_secret: Option<Spanned<String>>,
});

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPing {
    name: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    start: Option<bool>,
    warning_as_failure: Option<bool>,
    timeout: Option<Spanned<IntOrStr>>,
    retry_budget: Option<Spanned<IntOrStr>>,
    ca_file: Option<Spanned<PathBuf>>,
}

/// Names seen so far, across every kind.
struct Names(Vec<String>);

impl Names {
    fn take(
        &mut self,
        cx: &Ctx<'_>,
        kind: &str,
        index: usize,
        value: Option<Spanned<String>>,
        table: std::ops::Range<usize>,
    ) -> Result<String, ConfigError> {
        let key = format!("notify.{kind}.name");
        let (span, name) = match value {
            Some(v) => (v.span(), v.into_inner()),
            None if index == 0 => (table, kind.to_string()),
            None => (table, format!("{kind}-{}", index + 1)),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(cx.invalid(
                span,
                &key,
                format!("`{name}`: use letters, digits, '-', '_' or '.'"),
            ));
        }
        if self.0.contains(&name) {
            return Err(cx.invalid(
                span,
                &key,
                format!("`{name}` is used by another channel (names must be unique; set `name`)"),
            ));
        }
        self.0.push(name.clone());
        Ok(name)
    }
}

fn required<T>(
    cx: &Ctx<'_>,
    v: Option<Spanned<T>>,
    table: &std::ops::Range<usize>,
    key: &str,
) -> Result<Spanned<T>, ConfigError> {
    v.ok_or_else(|| cx.error(table.clone(), key, format!("`{key}` is required"), None))
}

fn http_url(cx: &Ctx<'_>, v: Spanned<String>, key: &str) -> Result<String, ConfigError> {
    let span = v.span();
    let url = v.into_inner();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(url)
        }
        // The URL may hold a secret: the message names the key, not the value.
        _ => Err(cx.invalid(span, key, "expected an http:// or https:// URL with a host")),
    }
}

fn non_empty(cx: &Ctx<'_>, v: Spanned<String>, key: &str) -> Result<String, ConfigError> {
    let span = v.span();
    let s = v.into_inner();
    if s.trim().is_empty() {
        return Err(cx.invalid(span, key, "must not be empty"));
    }
    Ok(s)
}

#[allow(clippy::too_many_arguments)]
fn common(
    cx: &Ctx<'_>,
    names: &mut Names,
    kind: &str,
    index: usize,
    table: std::ops::Range<usize>,
    name: Option<Spanned<String>>,
    on: Option<Vec<Spanned<String>>>,
    timeout: Option<Spanned<IntOrStr>>,
    retry_budget: Option<Spanned<IntOrStr>>,
) -> Result<Common, ConfigError> {
    let name = names.take(cx, kind, index, name, table)?;
    let on = match on {
        None => DEFAULT_EVENTS.to_vec(),
        Some(list) => {
            let mut out = Vec::new();
            for e in list {
                let ev = match e.get_ref().as_str() {
                    "failure" => Event::Failure,
                    "warning" => Event::Warning,
                    "success" => Event::Success,
                    other => {
                        let suggestion = super::closest(other, ["failure", "warning", "success"]);
                        return Err(cx.error(
                            e.span(),
                            &format!("notify.{kind}.on"),
                            format!(
                                "invalid value for `notify.{kind}.on`: unknown event `{other}` (valid: failure, warning, success)"
                            ),
                            suggestion.map(str::to_owned),
                        ));
                    }
                };
                if !out.contains(&ev) {
                    out.push(ev);
                }
            }
            out.sort();
            out
        }
    };
    Ok(Common {
        name,
        on,
        timeout: match timeout {
            Some(t) => duration_value(cx, t, &format!("notify.{kind}.timeout"))?,
            None => DEFAULT_TIMEOUT,
        },
        retry_budget: match retry_budget {
            Some(t) => duration_value(cx, t, &format!("notify.{kind}.retry_budget"))?,
            None => DEFAULT_RETRY_BUDGET,
        },
    })
}

fn ca(
    cx: &Ctx<'_>,
    v: Option<Spanned<PathBuf>>,
    kind: &str,
) -> Result<Option<PathBuf>, ConfigError> {
    v.map(|p| absolute_path(cx, p, &format!("notify.{kind}.ca_file")))
        .transpose()
}

impl RawMetrics {
    pub(super) fn validate(self, cx: &Ctx<'_>) -> Result<MetricsConfig, ConfigError> {
        let textfile = match self.textfile {
            None => None,
            Some(p) => {
                let span = p.span();
                let path = absolute_path(cx, p, "metrics.textfile")?;
                // node_exporter's textfile collector only reads `*.prom`; anything else would be silently ignored.
                if path.extension().is_none_or(|e| e != "prom") {
                    return Err(cx.invalid(
                        span,
                        "metrics.textfile",
                        "must end in `.prom` (node_exporter's textfile collector reads only *.prom files)",
                    ));
                }
                Some(path)
            }
        };
        Ok(MetricsConfig { textfile })
    }
}

impl RawNotify {
    pub(super) fn validate(self, cx: &Ctx<'_>) -> Result<NotifyConfig, ConfigError> {
        let mut names = Names(Vec::new());
        let mut out = NotifyConfig::default();

        for (i, entry) in self.email.unwrap_or_default().into_iter().enumerate() {
            let span = entry.span();
            let r = entry.into_inner();
            let common = common(
                cx,
                &mut names,
                "email",
                i,
                span.clone(),
                r.name,
                r.on,
                r.timeout,
                r.retry_budget,
            )?;
            let to_v = required(cx, r.to, &span, "notify.email.to")?;
            let to_span = to_v.span();
            let mut to = Vec::new();
            for addr in to_v.into_inner() {
                let s = addr.span();
                let a = addr.into_inner();
                if a.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(cx.invalid(
                        s,
                        "notify.email.to",
                        format!("`{a}` is not an email address"),
                    ));
                }
                to.push(a);
            }
            if to.is_empty() {
                return Err(cx.invalid(to_span, "notify.email.to", "needs at least one address"));
            }
            let from = match r.from {
                None => None,
                Some(f) => {
                    let s = f.span();
                    let a = f.into_inner();
                    if a.parse::<lettre::message::Mailbox>().is_err() {
                        return Err(cx.invalid(
                            s,
                            "notify.email.from",
                            format!("`{a}` is not an email address"),
                        ));
                    }
                    Some(a)
                }
            };
            let host = r
                .host
                .map(|h| non_empty(cx, h, "notify.email.host"))
                .transpose()?;
            let transport = r.transport.unwrap_or(if host.is_some() {
                MailTransport::Smtp
            } else {
                MailTransport::Sendmail
            });
            if transport == MailTransport::Smtp && host.is_none() {
                return Err(cx.error(
                    span,
                    "notify.email.host",
                    "`notify.email.host` is required with transport = \"smtp\"".into(),
                    None,
                ));
            }
            let tls = r.tls.unwrap_or(SmtpTls::Starttls);
            let port = match r.port {
                None => tls.default_port(),
                Some(p) => u16::try_from(*p.get_ref())
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        cx.invalid(
                            p.span(),
                            "notify.email.port",
                            format!("{} is not a port (1..=65535)", p.get_ref()),
                        )
                    })?,
            };
            let username = r
                .username
                .map(|u| non_empty(cx, u, "notify.email.username"))
                .transpose()?;
            let password = r.password.map(|p| p.into_inner());
            if username.is_some() != password.is_some() {
                return Err(cx.error(
                    span,
                    "notify.email.password",
                    "`username` and `password` go together (SMTP AUTH needs both)".into(),
                    None,
                ));
            }
            out.email.push(EmailConfig {
                common,
                to,
                from,
                transport,
                sendmail: r
                    .sendmail
                    .map(|s| non_empty(cx, s, "notify.email.sendmail"))
                    .transpose()?,
                host,
                port,
                tls,
                username,
                password,
                ca_file: ca(cx, r.ca_file, "email")?,
            });
        }

        for (i, entry) in self.telegram.unwrap_or_default().into_iter().enumerate() {
            let span = entry.span();
            let r = entry.into_inner();
            let common = common(
                cx,
                &mut names,
                "telegram",
                i,
                span.clone(),
                r.name,
                r.on,
                r.timeout,
                r.retry_budget,
            )?;
            let bot_token = non_empty(
                cx,
                required(cx, r.bot_token, &span, "notify.telegram.bot_token")?,
                "notify.telegram.bot_token",
            )?;
            let chat_id = required(cx, r.chat_id, &span, "notify.telegram.chat_id")?.into_inner();
            let api_url = match r.api_url {
                Some(u) => http_url(cx, u, "notify.telegram.api_url")?
                    .trim_end_matches('/')
                    .to_string(),
                None => "https://api.telegram.org".into(),
            };
            out.telegram.push(TelegramConfig {
                common,
                bot_token,
                chat_id,
                api_url,
                ca_file: ca(cx, r.ca_file, "telegram")?,
            });
        }

        for (i, entry) in self.gotify.unwrap_or_default().into_iter().enumerate() {
            let span = entry.span();
            let r = entry.into_inner();
            let common = common(
                cx,
                &mut names,
                "gotify",
                i,
                span.clone(),
                r.name,
                r.on,
                r.timeout,
                r.retry_budget,
            )?;
            let url = http_url(
                cx,
                required(cx, r.url, &span, "notify.gotify.url")?,
                "notify.gotify.url",
            )?;
            let token = non_empty(
                cx,
                required(cx, r.token, &span, "notify.gotify.token")?,
                "notify.gotify.token",
            )?;
            out.gotify.push(GotifyConfig {
                common,
                url: url.trim_end_matches('/').to_string(),
                token,
                ca_file: ca(cx, r.ca_file, "gotify")?,
            });
        }

        for (i, entry) in self.ntfy.unwrap_or_default().into_iter().enumerate() {
            let span = entry.span();
            let r = entry.into_inner();
            let common = common(
                cx,
                &mut names,
                "ntfy",
                i,
                span.clone(),
                r.name,
                r.on,
                r.timeout,
                r.retry_budget,
            )?;
            let url_v = required(cx, r.url, &span, "notify.ntfy.url")?;
            let url_span = url_v.span();
            let url = http_url(cx, url_v, "notify.ntfy.url")?;
            let has_topic = url
                .split_once("://")
                .and_then(|(_, r)| r.split_once('/'))
                .is_some_and(|(_, p)| {
                    !p.split(['?', '#'])
                        .next()
                        .unwrap_or("")
                        .trim_matches('/')
                        .is_empty()
                });
            if !has_topic {
                return Err(cx.invalid(
                    url_span,
                    "notify.ntfy.url",
                    "expected the topic URL, e.g. https://ntfy.example/backups",
                ));
            }
            out.ntfy.push(NtfyConfig {
                common,
                url: url.trim_end_matches('/').to_string(),
                token: r
                    .token
                    .map(|t| non_empty(cx, t, "notify.ntfy.token"))
                    .transpose()?,
                ca_file: ca(cx, r.ca_file, "ntfy")?,
            });
        }

        for (i, entry) in self.webhook.unwrap_or_default().into_iter().enumerate() {
            let span = entry.span();
            let r = entry.into_inner();
            let common = common(
                cx,
                &mut names,
                "webhook",
                i,
                span.clone(),
                r.name,
                r.on,
                r.timeout,
                r.retry_budget,
            )?;
            let url = http_url(
                cx,
                required(cx, r.url, &span, "notify.webhook.url")?,
                "notify.webhook.url",
            )?;
            let method = match r.method {
                None => HttpMethod::Post,
                Some(m) => match m.get_ref().to_ascii_uppercase().as_str() {
                    "POST" => HttpMethod::Post,
                    "PUT" => HttpMethod::Put,
                    other => {
                        return Err(cx.invalid(
                            m.span(),
                            "notify.webhook.method",
                            format!("`{other}` (valid: POST, PUT)"),
                        ));
                    }
                },
            };
            let headers = match r.headers {
                None => BTreeMap::new(),
                Some(h) => {
                    let span = h.span();
                    let h = h.into_inner();
                    for (k, v) in &h {
                        let token = !k.is_empty()
                            && k.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
                            });
                        if !token {
                            return Err(cx.invalid(
                                span,
                                "notify.webhook.headers",
                                format!("`{k}` is not a header name"),
                            ));
                        }
                        if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                            return Err(cx.invalid(
                                span,
                                "notify.webhook.headers",
                                format!("the value of `{k}` contains a line break"),
                            ));
                        }
                    }
                    h
                }
            };
            let hmac_secret = r
                .hmac_secret
                .map(|s| non_empty(cx, s, "notify.webhook.hmac_secret"))
                .transpose()?;
            out.webhook.push(WebhookConfig {
                common,
                url,
                method,
                format: r.format.unwrap_or(WebhookFormat::Json),
                headers,
                hmac_secret,
                ca_file: ca(cx, r.ca_file, "webhook")?,
            });
        }

        for (i, entry) in self.ping.unwrap_or_default().into_iter().enumerate() {
            let span = entry.span();
            let r = entry.into_inner();
            let name = names.take(cx, "ping", i, r.name, span.clone())?;
            let url = http_url(
                cx,
                required(cx, r.url, &span, "notify.ping.url")?,
                "notify.ping.url",
            )?;
            out.ping.push(PingConfig {
                name,
                url: url.trim_end_matches('/').to_string(),
                start: r.start.unwrap_or(true),
                warning_as_failure: r.warning_as_failure.unwrap_or(false),
                timeout: match r.timeout {
                    Some(t) => duration_value(cx, t, "notify.ping.timeout")?,
                    None => DEFAULT_TIMEOUT,
                },
                retry_budget: match r.retry_budget {
                    Some(t) => duration_value(cx, t, "notify.ping.retry_budget")?,
                    None => DEFAULT_RETRY_BUDGET,
                },
                ca_file: ca(cx, r.ca_file, "ping")?,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, parse, render_redacted};
    use super::*;
    use std::path::Path;

    const ORIGIN: &str = "/etc/proxkeep/proxkeep.toml";

    fn ok(text: &str) -> super::super::Config {
        parse(text, Path::new(ORIGIN), &[]).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// (line, key, message, suggestion)
    fn err(text: &str) -> (usize, String, String, Option<String>) {
        match parse(text, Path::new(ORIGIN), &[]) {
            Err(ConfigError::Invalid {
                line,
                key,
                message,
                suggestion,
                ..
            }) => (line, key, message, suggestion),
            other => panic!("{text:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_and_inference() {
        let c = ok(r#"
[metrics]
textfile = "/var/lib/prometheus/node-exporter/proxkeep.prom"
[[notify.email]]
to = ["root@localhost"]
[[notify.email]]
to = ["ops@example.com"]
host = "mail.example.com"
tls = "tls"
username = "u"
password = "p"
[[notify.ntfy]]
url = "https://ntfy.example/topic/"
on = ["success", "failure", "success"]
timeout = "2s"
retry_budget = 5
[[notify.ping]]
url = "https://hc.example/abc"
[[notify.webhook]]
name = "chat"
url = "https://hooks.example/x"
method = "put"
format = "slack"
"#);
        let n = &c.notify;
        assert_eq!(n.email[0].common.name, "email");
        assert_eq!(n.email[0].transport, MailTransport::Sendmail);
        assert_eq!(n.email[0].common.on, DEFAULT_EVENTS);
        assert_eq!(n.email[0].common.timeout, DEFAULT_TIMEOUT);
        assert_eq!(n.email[0].common.retry_budget, DEFAULT_RETRY_BUDGET);
        assert_eq!(n.email[1].common.name, "email-2");
        assert_eq!(
            (n.email[1].transport, n.email[1].port),
            (MailTransport::Smtp, 465)
        );
        assert_eq!(n.ntfy[0].url, "https://ntfy.example/topic");
        assert_eq!(n.ntfy[0].common.on, [Event::Failure, Event::Success]);
        assert_eq!(n.ntfy[0].common.timeout, Duration::from_secs(2));
        assert_eq!(n.ntfy[0].common.retry_budget, Duration::from_secs(5));
        assert!(n.ping[0].start && !n.ping[0].warning_as_failure);
        assert_eq!(
            (n.webhook[0].method, n.webhook[0].format),
            (HttpMethod::Put, WebhookFormat::Slack)
        );
        assert_eq!(
            n.channel_names(),
            ["email", "email-2", "ntfy", "chat", "ping"]
        );
        assert!(n.secrets().contains(&"p".to_string()));
        assert!(n.secrets().contains(&"https://hc.example/abc".to_string()));
        assert!(c.metrics.textfile.is_some());
    }

    #[test]
    fn render_round_trips_without_secrets() {
        let c = ok(
            "[[notify.email]]\nto = [\"root@localhost\"]\non = [\"success\"]\n[[notify.gotify]]\nurl = \"https://g.example\"\ntoken = \"t0ken\"\n",
        );
        let text = render_redacted(&c);
        assert!(
            text.contains("[[notify.email]]") && text.contains("token = \"<redacted>\""),
            "{text}"
        );
        let mut plain = c.clone();
        plain.notify.gotify.clear();
        assert_eq!(ok(&render_redacted(&plain)), plain);
    }

    #[test]
    fn errors_name_the_key() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, &str, &str)] = &[
            ("[[notify.email]]\nname = \"m\"\n", 1, "notify.email.to", "is required"),
            ("[[notify.email]]\nto = [\"not an address\"]\n", 2, "notify.email.to", "not an email address"),
            ("[[notify.email]]\nto = [\"a@b.c\"]\ntransport = \"smtp\"\n", 1, "notify.email.host", "required"),
            ("[[notify.email]]\nto = [\"a@b.c\"]\nhost = \"h\"\nusername = \"u\"\n", 1, "notify.email.password", "go together"),
            ("[[notify.email]]\nto = [\"a@b.c\"]\nport = 70000\n", 3, "notify.email.port", "not a port"),
            ("[[notify.gotify]]\nurl = \"gotify.example\"\ntoken = \"t\"\n", 2, "notify.gotify.url", "http:// or https://"),
            ("[[notify.ntfy]]\nurl = \"https://ntfy.example/\"\n", 2, "notify.ntfy.url", "topic URL"),
            ("[[notify.gotify]]\nname = \"x\"\nurl = \"https://g.example\"\ntoken = \"t\"\n[[notify.ntfy]]\nname = \"x\"\nurl = \"https://n.example/t\"\n", 6, "notify.ntfy.name", "used by another channel"),
            ("[[notify.webhook]]\nurl = \"https://w.example\"\nmethod = \"GET\"\n", 3, "notify.webhook.method", "valid: POST, PUT"),
            ("[[notify.webhook]]\nurl = \"https://w.example\"\nheaders = { \"Bad Header\" = \"x\" }\n", 3, "notify.webhook.headers", "not a header name"),
            ("[metrics]\ntextfile = \"/var/lib/x.txt\"\n", 2, "metrics.textfile", ".prom"),
            ("[metrics]\ntextfile = \"relative.prom\"\n", 2, "metrics.textfile", "absolute"),
            ("[[notify.ping]]\nurl = \"https://hc.example/x\"\non = [\"failure\"]\n", 3, "notify.ping.on", "unknown key"),
        ];
        for &(text, line, key, msg) in cases {
            let (l, k, m, _) = err(text);
            assert_eq!((l, k.as_str()), (line, key), "{text:?}: {m}");
            assert!(m.contains(msg), "{text:?}: {m}");
        }
        let (_, _, m, s) =
            err("[[notify.ntfy]]\nurl = \"https://n.example/t\"\non = [\"failur\"]\n");
        assert!(m.contains("unknown event `failur`"), "{m}");
        assert_eq!(s.as_deref(), Some("failure"));
        // A secret URL is never echoed in an error.
        let (_, _, m, _) = err("[[notify.ping]]\nurl = \"ftp://secret-uuid-1234\"\n");
        assert!(!m.contains("secret-uuid-1234"), "{m}");
    }

    #[test]
    fn reporting_only_reads_notify_and_metrics_of_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let notify =
            "[metrics]\ntextfile = \"/m/p.prom\"\n[[notify.ntfy]]\nurl = \"https://n.example/t\"\n";
        std::fs::write(
            &p,
            format!("bogus_key = 1\n[compression]\nlevel = 99\n{notify}"),
        )
        .unwrap();
        let c = super::super::load_reporting_only(Some(&p)).unwrap();
        assert_eq!(c.notify.ntfy.len(), 1);
        assert_eq!(c.metrics.textfile.as_deref(), Some(Path::new("/m/p.prom")));
        assert_eq!(c.compression, super::super::CompressionConfig::default());
        std::fs::write(&p, format!("[compression\n{notify}")).unwrap();
        assert!(super::super::load_reporting_only(Some(&p)).is_none());
        std::fs::write(&p, "[[notify.ntfy]]\nurl = 5\n").unwrap();
        assert!(super::super::load_reporting_only(Some(&p)).is_none());
        assert!(super::super::load_reporting_only(Some(&dir.path().join("missing"))).is_none());
    }

    #[test]
    fn url_secret_parts() {
        assert_eq!(
            url_password("https://u:pw@h.example/x").as_deref(),
            Some("pw")
        );
        assert_eq!(url_password("https://u@h.example/x"), None);
        assert_eq!(url_password("https://h.example/a@b"), None);
        assert_eq!(
            url_path("https://hc-ping.com/0f1e2d3c-aaaa-bbbb/").as_deref(),
            Some("0f1e2d3c-aaaa-bbbb")
        );
        assert_eq!(url_path("https://h.example/short"), None);
    }
}
