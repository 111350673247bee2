//! `[[notify.*]]` channels and `[metrics]` (keys and defaults: docs/monitoring.md).
//!
//! Secrets (passwords, tokens, topic/webhook/ping URLs, header values, HMAC keys) are listed by
//! [`NotifyConfig::secrets`] so the run's redactor can keep them out of every line that leaves the process.

use super::raw::{Ctx, Positive, Result, absolute_path, closest, unique_name};
use super::{ConfigError, ser_duration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
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
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub textfile: Option<PathBuf>,
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

/// The keys every channel table has.
struct Shared {
    name: Option<Spanned<String>>,
    on: Option<Vec<Spanned<String>>>,
    timeout: Option<Positive>,
    retry_budget: Option<Positive>,
    ca_file: Option<Spanned<PathBuf>>,
}

trait HasShared {
    /// Takes the shared keys out of the table.
    fn shared(&mut self) -> Shared;
}

/// A channel table: the shared keys (spelled out in each struct: `Spanned` does not survive `flatten`), then
/// the kind's own. `ping` has no `on` (every run pings): `#[serde(skip)]` keeps that key out of its table.
macro_rules! raw_channel {
    ($(#[$on:meta])? $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            name: Option<Spanned<String>>,
            $(#[$on])?
            on: Option<Vec<Spanned<String>>>,
            timeout: Option<Positive>,
            retry_budget: Option<Positive>,
            ca_file: Option<Spanned<PathBuf>>,
            $($field: $ty),*
        }

        impl HasShared for $name {
            fn shared(&mut self) -> Shared {
                Shared {
                    name: self.name.take(),
                    on: self.on.take(),
                    timeout: self.timeout.take(),
                    retry_budget: self.retry_budget.take(),
                    ca_file: self.ca_file.take(),
                }
            }
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
raw_channel!(#[serde(skip)] RawPing {
    url: Option<Spanned<String>>,
    start: Option<bool>,
    warning_as_failure: Option<bool>,
});

/// One kind of channel: the validation particular to it, after the shared keys.
trait Channel: HasShared + Sized {
    const KIND: &'static str;
    type Config;
    fn finish(self, ch: &Chan, common: Common) -> Result<Self::Config>;
}

/// The channel table being validated: where it is and what kind, for keys and errors.
struct Chan<'a> {
    cx: &'a Ctx<'a>,
    kind: &'static str,
    table: Range<usize>,
    /// `ca_file`, checked: every kind has it.
    ca_file: Option<PathBuf>,
}

impl Chan<'_> {
    /// `notify.KIND.key`
    fn key(&self, key: &str) -> String {
        format!("notify.{}.{key}", self.kind)
    }

    fn invalid(&self, span: Range<usize>, key: &str, detail: impl fmt::Display) -> ConfigError {
        self.cx.invalid(span, &self.key(key), detail)
    }

    /// An error about the table as a whole (a key missing, or two that go together).
    fn at_table(&self, key: &str, message: String) -> ConfigError {
        self.cx
            .error(self.table.clone(), &self.key(key), message, None)
    }

    fn required<T>(&self, v: Option<Spanned<T>>, key: &str) -> Result<Spanned<T>> {
        v.ok_or_else(|| self.at_table(key, format!("`{}` is required", self.key(key))))
    }

    fn url(&self, v: Spanned<String>, key: &str) -> Result<String> {
        let span = v.span();
        let url = v.into_inner();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(r)
                if !r.is_empty() && !r.starts_with('/') && !url.contains(char::is_whitespace) =>
            {
                Ok(url)
            }
            // The URL may hold a secret: the message names the key, not the value.
            _ => Err(self.invalid(span, key, "expected an http:// or https:// URL with a host")),
        }
    }

    /// A required URL without a trailing slash.
    fn base_url(&self, v: Option<Spanned<String>>, key: &str) -> Result<String> {
        let url = self.url(self.required(v, key)?, key)?;
        Ok(url.trim_end_matches('/').to_string())
    }

    fn non_empty(&self, v: Spanned<String>, key: &str) -> Result<String> {
        match v.get_ref().trim().is_empty() {
            true => Err(self.invalid(v.span(), key, "must not be empty")),
            false => Ok(v.into_inner()),
        }
    }

    fn optional(&self, v: Option<Spanned<String>>, key: &str) -> Result<Option<String>> {
        v.map(|v| self.non_empty(v, key)).transpose()
    }

    fn mailbox(&self, v: Spanned<String>, key: &str) -> Result<String> {
        if v.get_ref().parse::<lettre::message::Mailbox>().is_err() {
            let detail = format!("`{}` is not an email address", v.get_ref());
            return Err(self.invalid(v.span(), key, detail));
        }
        Ok(v.into_inner())
    }

    fn common(&self, names: &mut Vec<String>, index: usize, s: Shared) -> Result<Common> {
        let default = match index {
            0 => self.kind.to_string(),
            _ => format!("{}-{}", self.kind, index + 1),
        };
        let name = super::raw::name_or(s.name, self.table.clone(), default);
        let taken = "another channel (names must be unique; set `name`)";
        let name = unique_name(self.cx, name, &self.key("name"), names, taken)?;
        let given = s.on.is_some();
        let mut on = Vec::new();
        for e in s.on.unwrap_or_default() {
            let all = [Event::Failure, Event::Warning, Event::Success];
            let Some(event) = all.into_iter().find(|ev| ev.name() == e.get_ref()) else {
                let key = self.key("on");
                let suggestion = closest(e.get_ref(), all.map(Event::name));
                let message = format!(
                    "invalid value for `{key}`: unknown event `{}` (valid: failure, warning, success)",
                    e.get_ref()
                );
                return Err(self
                    .cx
                    .error(e.span(), &key, message, suggestion.map(str::to_owned)));
            };
            if !on.contains(&event) {
                on.push(event);
            }
        }
        on.sort();
        Ok(Common {
            name,
            on: if given { on } else { DEFAULT_EVENTS.to_vec() },
            timeout: s.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0),
            retry_budget: s.retry_budget.map_or(DEFAULT_RETRY_BUDGET, |t| t.0),
        })
    }
}

/// Every table of one kind, in order; `names` are the channel names taken so far, across kinds.
fn channels<R: Channel>(
    cx: &Ctx<'_>,
    names: &mut Vec<String>,
    list: Option<Vec<Spanned<R>>>,
) -> Result<Vec<R::Config>> {
    let mut out = Vec::new();
    for (i, entry) in list.unwrap_or_default().into_iter().enumerate() {
        let mut ch = Chan {
            cx,
            kind: R::KIND,
            table: entry.span(),
            ca_file: None,
        };
        let mut raw = entry.into_inner();
        let mut shared = raw.shared();
        let ca_file = shared.ca_file.take();
        let common = ch.common(names, i, shared)?;
        let key = ch.key("ca_file");
        ch.ca_file = ca_file.map(|p| absolute_path(cx, p, &key)).transpose()?;
        out.push(raw.finish(&ch, common)?);
    }
    Ok(out)
}

impl RawNotify {
    pub(super) fn validate(self, cx: &Ctx<'_>) -> Result<NotifyConfig> {
        let mut names = Vec::new();
        Ok(NotifyConfig {
            email: channels(cx, &mut names, self.email)?,
            telegram: channels(cx, &mut names, self.telegram)?,
            gotify: channels(cx, &mut names, self.gotify)?,
            ntfy: channels(cx, &mut names, self.ntfy)?,
            webhook: channels(cx, &mut names, self.webhook)?,
            ping: channels(cx, &mut names, self.ping)?,
        })
    }
}

impl Channel for RawEmail {
    const KIND: &'static str = "email";
    type Config = EmailConfig;

    fn finish(self, ch: &Chan, common: Common) -> Result<EmailConfig> {
        let to_v = ch.required(self.to, "to")?;
        let to_span = to_v.span();
        let to = (to_v.into_inner().into_iter())
            .map(|a| ch.mailbox(a, "to"))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(ch.invalid(to_span, "to", "needs at least one address"));
        }
        let from = self.from.map(|f| ch.mailbox(f, "from")).transpose()?;
        let host = ch.optional(self.host, "host")?;
        let transport = self.transport.unwrap_or(match host {
            Some(_) => MailTransport::Smtp,
            None => MailTransport::Sendmail,
        });
        if transport == MailTransport::Smtp && host.is_none() {
            let message = "`notify.email.host` is required with transport = \"smtp\"";
            return Err(ch.at_table("host", message.into()));
        }
        let tls = self.tls.unwrap_or(SmtpTls::Starttls);
        let port = match self.port {
            None => tls.default_port(),
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(n) if n > 0 => n,
                _ => {
                    let detail = format!("{} is not a port (1..=65535)", p.get_ref());
                    return Err(ch.invalid(p.span(), "port", detail));
                }
            },
        };
        let username = ch.optional(self.username, "username")?;
        let password = self.password.map(Spanned::into_inner);
        if username.is_some() != password.is_some() {
            let message = "`username` and `password` go together (SMTP AUTH needs both)";
            return Err(ch.at_table("password", message.into()));
        }
        Ok(EmailConfig {
            common,
            to,
            from,
            transport,
            sendmail: ch.optional(self.sendmail, "sendmail")?,
            host,
            port,
            tls,
            username,
            password,
            ca_file: ch.ca_file.clone(),
        })
    }
}

impl Channel for RawTelegram {
    const KIND: &'static str = "telegram";
    type Config = TelegramConfig;

    fn finish(self, ch: &Chan, common: Common) -> Result<TelegramConfig> {
        let bot_token = ch.non_empty(ch.required(self.bot_token, "bot_token")?, "bot_token")?;
        let chat_id = ch.required(self.chat_id, "chat_id")?.into_inner();
        let api_url = match self.api_url {
            Some(u) => ch.base_url(Some(u), "api_url")?,
            None => "https://api.telegram.org".into(),
        };
        Ok(TelegramConfig {
            common,
            bot_token,
            chat_id,
            api_url,
            ca_file: ch.ca_file.clone(),
        })
    }
}

impl Channel for RawGotify {
    const KIND: &'static str = "gotify";
    type Config = GotifyConfig;

    fn finish(self, ch: &Chan, common: Common) -> Result<GotifyConfig> {
        Ok(GotifyConfig {
            common,
            url: ch.base_url(self.url, "url")?,
            token: ch.non_empty(ch.required(self.token, "token")?, "token")?,
            ca_file: ch.ca_file.clone(),
        })
    }
}

impl Channel for RawNtfy {
    const KIND: &'static str = "ntfy";
    type Config = NtfyConfig;

    fn finish(self, ch: &Chan, common: Common) -> Result<NtfyConfig> {
        let url = ch.required(self.url, "url")?;
        let span = url.span();
        let url = ch.url(url, "url")?;
        let path = (url.split_once("://").and_then(|(_, r)| r.split_once('/'))).map_or("", |p| p.1);
        if path
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_matches('/')
            .is_empty()
        {
            let detail = "expected the topic URL, e.g. https://ntfy.example/backups";
            return Err(ch.invalid(span, "url", detail));
        }
        Ok(NtfyConfig {
            common,
            url: url.trim_end_matches('/').to_string(),
            token: ch.optional(self.token, "token")?,
            ca_file: ch.ca_file.clone(),
        })
    }
}

impl Channel for RawWebhook {
    const KIND: &'static str = "webhook";
    type Config = WebhookConfig;

    fn finish(self, ch: &Chan, common: Common) -> Result<WebhookConfig> {
        let url = ch.url(ch.required(self.url, "url")?, "url")?;
        let method = match self.method {
            None => HttpMethod::Post,
            Some(m) => match m.get_ref().to_ascii_uppercase().as_str() {
                "POST" => HttpMethod::Post,
                "PUT" => HttpMethod::Put,
                other => {
                    let detail = format!("`{other}` (valid: POST, PUT)");
                    return Err(ch.invalid(m.span(), "method", detail));
                }
            },
        };
        let (span, headers) = self
            .headers
            .map_or((0..0, BTreeMap::new()), |h| (h.span(), h.into_inner()));
        for (k, v) in &headers {
            let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if k.is_empty() || !k.bytes().all(token_char) {
                return Err(ch.invalid(span, "headers", format!("`{k}` is not a header name")));
            }
            if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                let detail = format!("the value of `{k}` contains a line break");
                return Err(ch.invalid(span, "headers", detail));
            }
        }
        Ok(WebhookConfig {
            common,
            url,
            method,
            format: self.format.unwrap_or(WebhookFormat::Json),
            headers,
            hmac_secret: ch.optional(self.hmac_secret, "hmac_secret")?,
            ca_file: ch.ca_file.clone(),
        })
    }
}

impl Channel for RawPing {
    const KIND: &'static str = "ping";
    type Config = PingConfig;

    fn finish(self, ch: &Chan, common: Common) -> Result<PingConfig> {
        Ok(PingConfig {
            name: common.name,
            url: ch.base_url(self.url, "url")?,
            start: self.start.unwrap_or(true),
            warning_as_failure: self.warning_as_failure.unwrap_or(false),
            timeout: common.timeout,
            retry_budget: common.retry_budget,
            ca_file: ch.ca_file.clone(),
        })
    }
}

impl RawMetrics {
    pub(super) fn validate(self, cx: &Ctx<'_>) -> Result<MetricsConfig> {
        let Some(p) = self.textfile else {
            return Ok(MetricsConfig::default());
        };
        let span = p.span();
        let path = absolute_path(cx, p, "metrics.textfile")?;
        // node_exporter's textfile collector only reads `*.prom`; anything else would be silently ignored.
        if path.extension().is_none_or(|e| e != "prom") {
            let detail =
                "must end in `.prom` (node_exporter's textfile collector reads only *.prom files)";
            return Err(cx.invalid(span, "metrics.textfile", detail));
        }
        Ok(MetricsConfig {
            textfile: Some(path),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, parse, render_redacted};
    use super::*;
    use std::path::Path;

    const ORIGIN: &str = "/etc/proxkeep/proxkeep.toml";

    fn ok(text: &str) -> super::super::Config {
        parse(text, Path::new(ORIGIN), &super::super::Checks::NONE)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// (line, key, message, suggestion)
    fn err(text: &str) -> (usize, String, String, Option<String>) {
        match parse(text, Path::new(ORIGIN), &super::super::Checks::NONE) {
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
