//! Requests of the HTTP channels, built as plain data (so they are tested without a server), each following
//! its service's documented API:
//! - Telegram Bot API `sendMessage` (<https://core.telegram.org/bots/api#sendmessage>): text ≤ 4096 characters;
//! - Gotify `POST /message` (<https://gotify.net/docs/pushmsg>), token in the `X-Gotify-Key` header;
//! - ntfy publish (<https://docs.ntfy.sh/publish/>): body = message, `Title`/`Priority`/`Tags` headers;
//! - webhooks: our JSON document, or Discord's `{"content"}` / Slack's `{"text"}`, optional HMAC signature;
//! - Healthchecks-style pings (<https://healthchecks.io/docs/http_api/>): `/start`, success, `/fail`.

use super::deliver::HttpRequest;
use super::report::{Report, Status};
use crate::config::{
    GotifyConfig, NtfyConfig, PingConfig, TelegramConfig, WebhookConfig, WebhookFormat,
};
use serde_json::json;

/// Telegram's limit for one message's text.
pub const TELEGRAM_MAX: usize = 4096;
/// Discord's limit for `content`.
pub const DISCORD_MAX: usize = 2000;
/// ntfy turns longer messages into attachments; stay below its 4096-byte default.
pub const NTFY_MAX_BYTES: usize = 4000;
/// Header carrying the webhook body's HMAC-SHA256, `sha256=<lowercase hex>`.
pub const SIGNATURE_HEADER: &str = "X-Proxkeep-Signature";

fn json_request(method: &'static str, url: String, body: &impl serde::Serialize) -> HttpRequest {
    HttpRequest {
        method,
        url,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// Split `text` into pieces of at most `max` UTF-16 code units (how Telegram counts), at line ends when a
/// line fits, else inside the line.
pub fn split_message(text: &str, max: usize) -> Vec<String> {
    let units = |s: &str| s.encode_utf16().count();
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.split_inclusive('\n') {
        if units(&cur) + units(line) <= max {
            cur.push_str(line);
            continue;
        }
        if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        // A line longer than a whole message: cut it on character boundaries.
        let mut n = 0;
        for c in line.chars() {
            if n + c.len_utf16() > max {
                out.push(std::mem::take(&mut cur));
                n = 0;
            }
            cur.push(c);
            n += c.len_utf16();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// One `sendMessage` per piece of the report.
pub fn telegram(c: &TelegramConfig, r: &Report) -> Vec<HttpRequest> {
    // The token is part of the path (the Bot API has no other place for it); log lines never show URLs and the
    // redactor knows the token anyway.
    let url = format!("{}/bot{}/sendMessage", c.api_url, c.bot_token);
    split_message(&r.text(), TELEGRAM_MAX)
        .into_iter()
        .map(|text| json!({"chat_id": c.chat_id, "text": text, "disable_web_page_preview": true}))
        .map(|body| json_request("POST", url.clone(), &body))
        .collect()
}

/// Gotify priority by status (ok, warning, failed): 8+ rings on Android by default, 4–7 notify quietly, 1–3
/// sit in the list.
const GOTIFY_PRIORITY: [u8; 3] = [2, 5, 8];

pub fn gotify(c: &GotifyConfig, r: &Report) -> HttpRequest {
    let body = json!({
        "title": r.title(),
        "message": r.text(),
        "priority": GOTIFY_PRIORITY[r.status as usize],
        "extras": {"client::display": {"contentType": "text/plain"}},
    });
    let mut req = json_request("POST", format!("{}/message", c.url), &body);
    // Header, not `?token=`: query strings end up in proxy and access logs.
    req.headers.push(("X-Gotify-Key".into(), c.token.clone()));
    req
}

/// ntfy priority (1 min … 5 max) and tags (emoji short codes) by status.
pub fn ntfy_priority_tags(s: Status) -> (u8, String) {
    let emoji = ["white_check_mark", "warning", "rotating_light"][s as usize];
    ([3, 4, 5][s as usize], format!("{emoji},proxkeep"))
}

pub fn ntfy(c: &NtfyConfig, r: &Report) -> HttpRequest {
    let (priority, tags) = ntfy_priority_tags(r.status);
    let mut body = r.text();
    if body.len() > NTFY_MAX_BYTES {
        let cut = (0..=NTFY_MAX_BYTES - 4)
            .rev()
            .find(|&i| body.is_char_boundary(i));
        body.truncate(cut.unwrap_or(0));
        body.push_str("\n…");
    }
    let mut headers = vec![
        text_plain(),
        ("Title".into(), ascii_header(&r.title())),
        ("Priority".into(), priority.to_string()),
        ("Tags".into(), tags),
    ];
    if let Some(t) = &c.token {
        headers.push(("Authorization".into(), format!("Bearer {t}")));
    }
    HttpRequest {
        method: "POST",
        url: c.url.clone(),
        headers,
        body: body.into_bytes(),
    }
}

fn text_plain() -> (String, String) {
    ("Content-Type".into(), "text/plain; charset=utf-8".into())
}

/// Header values must be visible ASCII; a host name always is, but be safe.
fn ascii_header(s: &str) -> String {
    s.replace(|c: char| !c.is_ascii() || c.is_ascii_control(), "?")
}

pub fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    base16ct::lower::encode_string(ring::hmac::sign(&k, body).as_ref())
}

pub fn webhook(c: &WebhookConfig, r: &Report) -> HttpRequest {
    let method = c.method.as_str();
    let mut req = match c.format {
        // Serialized from the struct, not a `Value`: keys stay in the documented order.
        WebhookFormat::Json => json_request(method, c.url.clone(), r),
        WebhookFormat::Discord => {
            let text = super::deliver::clip(&r.text(), DISCORD_MAX - 10);
            let body = json!({"content": text, "username": "proxkeep"});
            json_request(method, c.url.clone(), &body)
        }
        WebhookFormat::Slack => json_request(method, c.url.clone(), &json!({"text": r.text()})),
    };
    for (k, v) in &c.headers {
        req.headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        req.headers.push((k.clone(), v.clone()));
    }
    if let Some(secret) = &c.hmac_secret {
        let sig = format!("sha256={}", hmac_sha256_hex(secret.as_bytes(), &req.body));
        req.headers.push((SIGNATURE_HEADER.into(), sig));
    }
    req
}

/// `<url>/<suffix>`, keeping a query string at the end (`…/uuid/fail?rid=…`).
pub fn ping_url(base: &str, suffix: &str) -> String {
    // `query` keeps its `?`.
    let (path, query) = base.split_at(base.find('?').unwrap_or(base.len()));
    let path = path.trim_end_matches('/');
    match suffix {
        "" => format!("{path}{query}"),
        _ => format!("{path}/{suffix}{query}"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    Start,
    Success,
    Fail,
}

impl Ping {
    pub fn name(self) -> &'static str {
        ["start", "success", "fail"][self as usize]
    }
    pub fn for_status(c: &PingConfig, s: Status) -> Ping {
        match s {
            Status::Ok => Ping::Success,
            Status::Warning if !c.warning_as_failure => Ping::Success,
            _ => Ping::Fail,
        }
    }
}

/// Healthchecks limits a ping body to 100 kB; the log tail stays far below.
pub const PING_BODY_MAX: usize = 10_000;

pub fn ping(c: &PingConfig, kind: Ping, log_tail: &[String]) -> HttpRequest {
    let (method, suffix, mut body, headers) = match kind {
        Ping::Start => ("GET", "start", String::new(), vec![]),
        Ping::Success => ("GET", "", String::new(), vec![]),
        Ping::Fail => ("POST", "fail", log_tail.join("\n"), vec![text_plain()]),
    };
    if body.len() > PING_BODY_MAX {
        let start = (body.len() - PING_BODY_MAX..).find(|&i| body.is_char_boundary(i));
        body.drain(..start.unwrap_or(0));
    }
    HttpRequest {
        method,
        url: ping_url(&c.url, suffix),
        headers,
        body: body.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChatId, HttpMethod};
    use crate::notify::report::RunInfo;
    use jiff::Timestamp;
    use std::time::Duration;

    fn report() -> Report {
        Report::sample(&RunInfo {
            host: "pbs1".into(),
            role: "pbs".into(),
            started: Timestamp::from_second(1_767_225_600).unwrap(),
            ended: Timestamp::from_second(1_767_225_601).unwrap(),
        })
    }

    #[test]
    fn split_respects_limit_and_keeps_everything() {
        let text: String = (0..500).map(|i| format!("line {i} äöü 😀\n")).collect();
        let parts = split_message(&text, TELEGRAM_MAX);
        assert!(parts.len() > 1);
        assert!(
            parts
                .iter()
                .all(|p| p.encode_utf16().count() <= TELEGRAM_MAX)
        );
        assert_eq!(parts.concat(), text);
        let long = "x".repeat(10_000);
        let parts = split_message(&long, TELEGRAM_MAX);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [4096, 4096, 1808]
        );
        assert_eq!(split_message("short", TELEGRAM_MAX), ["short"]);
    }

    #[test]
    fn telegram_request_shape() {
        let c = TelegramConfig {
            name: "tg".into(),
            on: vec![],
            timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(1),
            bot_token: "123:ABC".into(),
            chat_id: ChatId::Id(-1001),
            api_url: "http://127.0.0.1:1".into(),
            ca_file: None,
        };
        let reqs = telegram(&c, &report());
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].url, "http://127.0.0.1:1/bot123:ABC/sendMessage");
        let v: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(v["chat_id"], -1001);
        assert!(v["text"].as_str().unwrap().starts_with("pbs1: backup ok"));
    }

    #[test]
    fn gotify_and_ntfy_shapes() {
        let g = gotify(
            &GotifyConfig {
                name: "g".into(),
                on: vec![],
                timeout: Duration::from_secs(1),
                retry_budget: Duration::from_secs(1),
                url: "https://g.example".into(),
                token: "AppTok".into(),
                ca_file: None,
            },
            &report(),
        );
        assert_eq!(g.url, "https://g.example/message");
        assert_eq!(g.header("X-Gotify-Key"), Some("AppTok"));
        assert!(!String::from_utf8_lossy(&g.body).contains("AppTok"));
        let n = ntfy(
            &NtfyConfig {
                name: "n".into(),
                on: vec![],
                timeout: Duration::from_secs(1),
                retry_budget: Duration::from_secs(1),
                url: "https://n.example/topic".into(),
                token: Some("tk_x".into()),
                ca_file: None,
            },
            &report(),
        );
        assert_eq!(n.header("Priority"), Some("3"));
        assert_eq!(n.header("Authorization"), Some("Bearer tk_x"));
        assert_eq!(n.header("Title"), Some("pbs1: backup ok (test)"));
        assert_eq!(ntfy_priority_tags(Status::Failed).0, 5);
    }

    #[test]
    fn webhook_signature_and_formats() {
        let mut c = WebhookConfig {
            name: "w".into(),
            on: vec![],
            timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(1),
            url: "https://w.example/hook".into(),
            method: HttpMethod::Put,
            format: WebhookFormat::Json,
            headers: [("X-Extra".to_string(), "1".to_string())].into(),
            hmac_secret: Some("key".into()),
            ca_file: None,
        };
        let r = webhook(&c, &report());
        assert_eq!(r.method, "PUT");
        assert_eq!(r.header("x-extra"), Some("1"));
        let sig = r.header(SIGNATURE_HEADER).unwrap();
        assert_eq!(sig, format!("sha256={}", hmac_sha256_hex(b"key", &r.body)));
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        c.format = WebhookFormat::Discord;
        let v: serde_json::Value = serde_json::from_slice(&webhook(&c, &report()).body).unwrap();
        assert!(v["content"].as_str().unwrap().chars().count() <= DISCORD_MAX);
        c.format = WebhookFormat::Slack;
        let v: serde_json::Value = serde_json::from_slice(&webhook(&c, &report()).body).unwrap();
        assert!(v["text"].is_string());
    }

    #[test]
    fn ping_urls() {
        assert_eq!(
            ping_url("https://hc.example/abc", "start"),
            "https://hc.example/abc/start"
        );
        assert_eq!(
            ping_url("https://hc.example/abc/", ""),
            "https://hc.example/abc"
        );
        assert_eq!(
            ping_url("https://hc.example/abc?rid=1", "fail"),
            "https://hc.example/abc/fail?rid=1"
        );
        let c = PingConfig {
            name: "hc".into(),
            on: vec![],
            url: "https://hc.example/abc".into(),
            start: true,
            warning_as_failure: false,
            timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(1),
            ca_file: None,
        };
        assert_eq!(Ping::for_status(&c, Status::Warning), Ping::Success);
        let tail: Vec<String> = (0..2000).map(|i| format!("log line {i}")).collect();
        let f = ping(&c, Ping::Fail, &tail);
        assert_eq!(
            (f.method, f.url.as_str()),
            ("POST", "https://hc.example/abc/fail")
        );
        assert!(f.body.len() <= PING_BODY_MAX);
        assert!(
            String::from_utf8(f.body)
                .unwrap()
                .ends_with("log line 1999")
        );
    }
}
