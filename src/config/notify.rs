//! `[[notify.*]]` channels and `[metrics]` (keys and defaults: docs/monitoring.md).
//!
//! Secrets (passwords, tokens, topic/webhook/ping URLs, header values, HMAC keys) are listed by
//! [`NotifyConfig::secrets`] so the run's redactor can keep them out of every line that leaves the process.

use super::raw::{
    AbsPath, At, Ctx, Result, absolute_path, checked, checked_str, many, one, positive, some,
    span_of,
};
use super::ser_duration;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which run outcomes a channel hears about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Event {
    Failure,
    Warning,
    Success,
}

impl Event {
    pub const ALL: [Event; 3] = [Event::Failure, Event::Warning, Event::Success];

    pub fn name(self) -> &'static str {
        ["failure", "warning", "success"][self as usize]
    }
}

/// The keys every channel has, borrowed from it.
pub struct Common<'a> {
    pub name: &'a str,
    pub on: &'a [Event],
    pub timeout: Duration,
    pub retry_budget: Duration,
    pub ca_file: Option<&'a Path>,
}

fn default_events() -> Vec<Event> {
    vec![Event::Failure, Event::Warning]
}

/// A channel's struct: the keys every channel has (`flatten` would hide them from the field list of
/// `deny_unknown_fields` errors, which the key check and the suggestions read), then the kind's own. The name
/// defaults to the kind and the position: [`NotifyConfig::finish`] sets it. `ping` has no `on` (every run
/// pings): `#[serde(skip)]` keeps that key out of its table.
macro_rules! channel {
    ($(#[$doc:meta])* $name:ident #[$on:meta] { $($body:tt)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Unique among all channels: `--channel NAME`, log lines and the `channel` metric label use it.
            #[serde(default)]
            pub name: String,
            #[$on]
            pub on: Vec<Event>,
            /// Limit of one attempt (connect + send + answer).
            #[serde(
                default = "super::secs::<10>",
                serialize_with = "ser_duration",
                deserialize_with = "positive"
            )]
            pub timeout: Duration,
            /// Total time spent on this channel, retries included (the issue's "30 s budget per channel").
            #[serde(
                default = "super::secs::<30>",
                serialize_with = "ser_duration",
                deserialize_with = "positive"
            )]
            pub retry_budget: Duration,
            $($body)*
            /// PEM file with the CA (or self-signed certificate) to trust instead of the system store.
            #[serde(default, deserialize_with = "some::<_, AbsPath, _>")]
            pub ca_file: Option<PathBuf>,
        }

        impl $name {
            pub fn common(&self) -> Common<'_> {
                Common {
                    name: &self.name,
                    on: &self.on,
                    timeout: self.timeout,
                    retry_budget: self.retry_budget,
                    ca_file: self.ca_file.as_deref(),
                }
            }
        }
    };
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    #[default]
    Sendmail,
    Smtp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refuses to send if the server does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a trusted LAN.
    None,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        [587, 465, 25][self as usize]
    }
}

channel!(
    /// `[[notify.email]]`
    EmailConfig #[serde(default = "default_events", deserialize_with = "events")] {
        #[serde(deserialize_with = "mailboxes")]
        pub to: Vec<String>,
        /// Default `proxkeep@<host>`.
        #[serde(default, deserialize_with = "some::<_, Mailbox, _>")]
        pub from: Option<String>,
        /// Default: smtp when `host` is set, else sendmail.
        #[serde(default)]
        pub transport: MailTransport,
        /// Sendmail program; default: `sendmail` found on PATH, else `/usr/sbin/sendmail`.
        #[serde(default, deserialize_with = "some::<_, NonEmpty, _>")]
        pub sendmail: Option<String>,
        #[serde(default, deserialize_with = "some::<_, NonEmpty, _>")]
        pub host: Option<String>,
        /// Default: the port of `tls`.
        #[serde(default, deserialize_with = "port")]
        pub port: u16,
        #[serde(default)]
        pub tls: SmtpTls,
        #[serde(default, deserialize_with = "some::<_, NonEmpty, _>")]
        pub username: Option<String>,
        pub password: Option<String>,
    }
);

channel!(
    /// `[[notify.telegram]]`
    TelegramConfig #[serde(default = "default_events", deserialize_with = "events")] {
        #[serde(deserialize_with = "one::<_, NonEmpty, _>")]
        pub bot_token: String,
        /// A numeric chat id or `@channelname`, sent as given.
        pub chat_id: ChatId,
        /// Bot API base URL: a self-hosted Bot API server, or a test stand-in.
        #[serde(default = "telegram_api", deserialize_with = "one::<_, BaseUrl, _>")]
        pub api_url: String,
    }
);

fn telegram_api() -> String {
    "https://api.telegram.org".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatId {
    Id(i64),
    Name(String),
}

channel!(
    /// `[[notify.gotify]]`
    GotifyConfig #[serde(default = "default_events", deserialize_with = "events")] {
        /// Server base URL; messages go to `<url>/message`.
        #[serde(deserialize_with = "one::<_, BaseUrl, _>")]
        pub url: String,
        /// Application token (sent as `X-Gotify-Key`, never in the URL).
        #[serde(deserialize_with = "one::<_, NonEmpty, _>")]
        pub token: String,
    }
);

channel!(
    /// `[[notify.ntfy]]`
    NtfyConfig #[serde(default = "default_events", deserialize_with = "events")] {
        /// Topic URL (`https://ntfy.example/backups`): anyone who knows it can read, so it counts as a secret.
        #[serde(deserialize_with = "one::<_, TopicUrl, _>")]
        pub url: String,
        #[serde(default, deserialize_with = "some::<_, NonEmpty, _>")]
        pub token: Option<String>,
    }
);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The documented `proxkeep.report/1` JSON document (docs/monitoring.md).
    #[default]
    Json,
    /// `{"content": ...}` for a Discord webhook.
    Discord,
    /// `{"text": ...}` for a Slack (or Mattermost, Rocket.Chat) incoming webhook.
    Slack,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        ["POST", "PUT"][self as usize]
    }
}

channel!(
    /// `[[notify.webhook]]`
    WebhookConfig #[serde(default = "default_events", deserialize_with = "events")] {
        /// Often a secret itself (Discord and Slack webhook URLs are).
        #[serde(deserialize_with = "one::<_, Url, _>")]
        pub url: String,
        #[serde(default, deserialize_with = "one::<_, Method, _>")]
        pub method: HttpMethod,
        #[serde(default)]
        pub format: WebhookFormat,
        /// Extra request headers (e.g. `Authorization`); their values are treated as secrets.
        #[serde(default, deserialize_with = "headers")]
        pub headers: BTreeMap<String, String>,
        /// Key of the `X-Proxkeep-Signature: sha256=<hex>` header (HMAC-SHA256 over the exact body).
        #[serde(default, deserialize_with = "some::<_, NonEmpty, _>")]
        pub hmac_secret: Option<String>,
    }
);

channel!(
    /// `[[notify.ping]]`: a dead-man switch (Healthchecks.io and compatible).
    PingConfig #[serde(skip)] {
        /// Check URL: `<url>/start`, `<url>`, `<url>/fail` are derived from it. The UUID in it is the secret.
        #[serde(deserialize_with = "one::<_, BaseUrl, _>")]
        pub url: String,
        /// Ping `<url>/start` when the run begins (lets the service measure run time and notice hung runs).
        #[serde(default = "yes")]
        pub start: bool,
        /// Report runs with warnings as failures (default: a written, verified archive is a success).
        #[serde(default)]
        pub warning_as_failure: bool,
    }
);

fn yes() -> bool {
    true
}

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
    /// Kind, and the settings every kind has.
    pub fn parts(&self) -> (&'static str, Common<'_>) {
        match *self {
            Channel::Email(c) => ("email", c.common()),
            Channel::Telegram(c) => ("telegram", c.common()),
            Channel::Gotify(c) => ("gotify", c.common()),
            Channel::Ntfy(c) => ("ntfy", c.common()),
            Channel::Webhook(c) => ("webhook", c.common()),
            Channel::Ping(c) => ("ping", c.common()),
        }
    }
    pub fn name(&self) -> &str {
        self.parts().1.name
    }
    /// Whether a run with this outcome is reported here. Pings report every run: a missing ping is the alarm.
    pub fn wants(&self, e: Event) -> bool {
        matches!(self, Channel::Ping(_)) || self.parts().1.on.contains(&e)
    }
}

/// `[notify]`: every channel, by kind.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
        self.channels().is_empty()
    }

    /// Every channel's name, in the order channels are listed (email, telegram, gotify, ntfy, webhook, ping).
    pub fn channel_names(&self) -> Vec<String> {
        self.channels()
            .iter()
            .map(|c| c.name().to_owned())
            .collect()
    }

    pub fn channels(&self) -> Vec<Channel<'_>> {
        (self.email.iter().map(Channel::Email))
            .chain(self.telegram.iter().map(Channel::Telegram))
            .chain(self.gotify.iter().map(Channel::Gotify))
            .chain(self.ntfy.iter().map(Channel::Ntfy))
            .chain(self.webhook.iter().map(Channel::Webhook))
            .chain(self.ping.iter().map(Channel::Ping))
            .collect()
    }

    /// Values that must never appear in a log line, an error or `--json` output.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        // A URL that is a secret as a whole, and its password on its own (an error may quote just that).
        let whole_url = |u: &String| [u.clone()].into_iter().chain(url_password(u));
        out.extend(self.email.iter().filter_map(|c| c.password.clone()));
        for c in &self.telegram {
            out.push(c.bot_token.clone());
            out.extend(url_password(&c.api_url));
        }
        for c in &self.gotify {
            out.push(c.token.clone());
            out.extend(url_password(&c.url));
        }
        for c in &self.ntfy {
            out.extend(c.token.clone());
            out.extend(whole_url(&c.url));
        }
        for c in &self.webhook {
            out.extend(whole_url(&c.url));
            out.extend(c.headers.values().cloned());
            out.extend(c.hmac_secret.clone());
        }
        for c in &self.ping {
            out.extend(whole_url(&c.url));
            // The part after the host alone (Healthchecks' UUID or `ping-key/slug`) gives the check away too.
            out.extend(url_path(&c.url));
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Prometheus textfile (node_exporter's textfile collector). Unset: no metrics are written.
    #[serde(deserialize_with = "some::<_, PromPath, _>")]
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
    let path = path_part(url);
    (path.len() >= 8).then(|| path.to_string())
}

/// The path of a URL, without the query, the fragment and the slashes around it.
fn path_part(url: &str) -> &str {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    path.split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_matches('/')
}

checked_str! {
    NonEmpty(String) = |s: &str| match s.trim().is_empty() {
        true => Err("must not be empty".into()),
        false => Ok(s.to_owned()),
    };
    Mailbox(String) = |s: &str| match s.parse::<lettre::message::Mailbox>() {
        Ok(_) => Ok(s.to_owned()),
        Err(_) => Err(format!("`{s}` is not an email address")),
    };
    Url(String) = url;
    BaseUrl(String) = |s: &str| Ok(url(s)?.trim_end_matches('/').to_owned());
    TopicUrl(String) = topic_url;
    Method(HttpMethod) = |s: &str| match s.to_ascii_uppercase().as_str() {
        "POST" => Ok(HttpMethod::Post),
        "PUT" => Ok(HttpMethod::Put),
        other => Err(format!("`{other}` (valid: POST, PUT)")),
    };
    EventName(Event) = |s: &str| (Event::ALL.into_iter().find(|e| e.name() == s))
        .ok_or_else(|| format!("unknown event `{s}` (valid: failure, warning, success)"));
    PromPath(PathBuf) = |s: &str| {
        let path = absolute_path(s)?;
        // node_exporter's textfile collector only reads `*.prom`; anything else would be silently ignored.
        match path.extension().is_some_and(|e| e == "prom") {
            true => Ok(path),
            false => Err(
                "must end in `.prom` (node_exporter's textfile collector reads only *.prom files)".into(),
            ),
        }
    };
}

fn url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(url.to_owned())
        }
        // The URL may hold a secret: the message names the key, not the value.
        _ => Err("expected an http:// or https:// URL with a host".into()),
    }
}

fn topic_url(s: &str) -> Result<String, String> {
    let url = url(s)?;
    match path_part(&url) {
        "" => Err("expected the topic URL, e.g. https://ntfy.example/backups".into()),
        _ => Ok(url.trim_end_matches('/').to_owned()),
    }
}

fn events<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Event>, D::Error> {
    let mut on = many::<_, EventName, Event>(d)?;
    on.sort();
    on.dedup();
    Ok(on)
}

fn mailboxes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let to = many::<_, Mailbox, String>(d)?;
    match to.is_empty() {
        true => Err(serde::de::Error::custom("needs at least one address")),
        false => Ok(to),
    }
}

fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    checked(d, |n: i64| {
        (u16::try_from(n).ok().filter(|&p| p > 0))
            .ok_or_else(|| format!("{n} is not a port (1..=65535)"))
    })
}

fn headers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    checked(d, |headers: BTreeMap<String, String>| {
        for (k, v) in &headers {
            let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if k.is_empty() || !k.bytes().all(token_char) {
                return Err(format!("`{k}` is not a header name"));
            }
            if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(format!("the value of `{k}` contains a line break"));
            }
        }
        Ok(headers)
    })
}

impl NotifyConfig {
    /// Channel names (default: the kind, then `kind-2`, ...; unique across kinds) and the email defaults that
    /// depend on other keys.
    pub(super) fn finish(&mut self, cx: &Ctx<'_>, doc: Option<At<'_>>) -> Result<()> {
        let table = |kind: &str, i: usize| doc.and_then(|d| d.key(kind)?.nth(i));
        let mut seen = Vec::new();
        let taken = "another channel (names must be unique; set `name`)";
        macro_rules! names {
            ($($kind:ident)*) => {$(
                for (i, c) in self.$kind.iter_mut().enumerate() {
                    let kind = stringify!($kind);
                    let default = || match i {
                        0 => kind.to_owned(),
                        _ => format!("{kind}-{}", i + 1),
                    };
                    let key = format!("notify.{kind}.name");
                    cx.name(table(kind, i), &mut c.name, default, &key, &mut seen, taken)?;
                }
            )*};
        }
        names!(email telegram gotify ntfy webhook ping);
        for (i, c) in self.email.iter_mut().enumerate() {
            let table = table("email", i);
            let at_table = |key: &str, message: &str| {
                let key = format!("notify.email.{key}");
                cx.error(span_of(table, ""), &key, message.into(), None)
            };
            if table.and_then(|t| t.key("transport")).is_none() && c.host.is_some() {
                c.transport = MailTransport::Smtp;
            }
            if c.transport == MailTransport::Smtp && c.host.is_none() {
                let message = "`notify.email.host` is required with transport = \"smtp\"";
                return Err(at_table("host", message));
            }
            if c.port == 0 {
                c.port = c.tls.default_port();
            }
            if c.username.is_some() != c.password.is_some() {
                let message = "`username` and `password` go together (SMTP AUTH needs both)";
                return Err(at_table("password", message));
            }
        }
        Ok(())
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
        assert_eq!(n.email[0].name, "email");
        assert_eq!(n.email[0].transport, MailTransport::Sendmail);
        assert_eq!(n.email[0].on, [Event::Failure, Event::Warning]);
        assert_eq!(n.email[0].timeout, Duration::from_secs(10));
        assert_eq!(n.email[0].retry_budget, Duration::from_secs(30));
        assert_eq!(n.email[1].name, "email-2");
        assert_eq!(
            (n.email[1].transport, n.email[1].port),
            (MailTransport::Smtp, 465)
        );
        assert_eq!(n.ntfy[0].url, "https://ntfy.example/topic");
        assert_eq!(n.ntfy[0].on, [Event::Failure, Event::Success]);
        assert_eq!(n.ntfy[0].timeout, Duration::from_secs(2));
        assert_eq!(n.ntfy[0].retry_budget, Duration::from_secs(5));
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
