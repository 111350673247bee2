//! Getting one message through: the retry rule, and HTTP over ureq.
//!
//! Rule (issue 7): retry with backoff on timeouts, connection problems and 5xx (or an SMTP/sendmail
//! temporary failure); never on 4xx (or a permanent SMTP failure such as a rejected password): repeating a
//! request the server called wrong only hammers it. Every channel gets a time budget (default 30 s) that
//! all its attempts and pauses share.

use std::path::Path;
use std::time::{Duration, Instant};
use ureq::http::Request;

/// Pause before the second attempt; doubled each time up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// An attempt with less time than this left in the budget is not started.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);
/// Error bodies quoted in messages are cut here.
const ERROR_BODY_CHARS: usize = 300;

#[derive(Debug, Clone, thiserror::Error)]
pub enum NotifyError {
    /// The server answered with a non-2xx status.
    #[error("HTTP {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status { status: u16, body: String },
    #[error("no answer within {0:.1} s")]
    Timeout(f64),
    /// Connection refused, DNS, TLS handshake cut, ...: the network, not the request.
    #[error("{0}")]
    Transport(String),
    /// SMTP conversation failed; `permanent` is the server's 5xx verdict (or a TLS/client error).
    #[error("SMTP: {message}")]
    Smtp { message: String, permanent: bool },
    #[error("sendmail: {message}")]
    Sendmail { message: String, temporary: bool },
    /// The TLS handshake refused the peer (untrusted or wrong certificate): the same on every attempt.
    #[error("TLS: {0}")]
    Tls(String),
    /// Local problem (unreadable CA file, bad address): no attempt would ever succeed.
    #[error("{0}")]
    Setup(String),
}

impl NotifyError {
    pub fn retryable(&self) -> bool {
        match self {
            NotifyError::Status { status, .. } => *status >= 500,
            NotifyError::Timeout(_) | NotifyError::Transport(_) => true,
            NotifyError::Smtp { permanent, .. } => !permanent,
            NotifyError::Sendmail { temporary, .. } => *temporary,
            NotifyError::Setup(_) | NotifyError::Tls(_) => false,
        }
    }
}

/// Whether `e` (or anything in its source chain, including an `io::Error`'s payload) is rustls refusing the
/// peer: a certificate that does not verify, or no protocol in common. Retrying cannot change that.
pub fn tls_rejection(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut chain = std::iter::successors(Some(e), |err| err.source());
    let rustls = chain.find_map(|err| {
        let in_io = || {
            let io = err.downcast_ref::<std::io::Error>()?;
            io.get_ref()?.downcast_ref::<rustls::Error>()
        };
        err.downcast_ref::<rustls::Error>().or_else(in_io)
    })?;
    matches!(
        rustls,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::UnsupportedNameType
    )
    .then(|| rustls.to_string())
}

/// Pause after failed attempt number `n` (1-based).
pub fn backoff(n: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << (n.saturating_sub(1)).min(16))
        .min(MAX_BACKOFF)
}

/// What the attempts at one message came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempts: u32,
    pub result: Result<(), NotifyError>,
    /// One line per failed attempt that was retried, for the log.
    pub retries: Vec<String>,
}

impl Outcome {
    /// No attempt made: `result` stands before the first (a setup error, or `Ok` to add attempts to).
    pub fn none(result: Result<(), NotifyError>) -> Outcome {
        Outcome {
            attempts: 0,
            result,
            retries: vec![],
        }
    }
}

/// Call `attempt` (given the time it may take) until it succeeds, fails for good, or `deadline` leaves no
/// room for another try. `per_attempt` caps each attempt.
pub fn with_retries(
    deadline: Instant,
    per_attempt: Duration,
    mut attempt: impl FnMut(Duration) -> Result<(), NotifyError>,
) -> Outcome {
    let mut retries = Vec::new();
    let mut n = 0;
    let result = loop {
        n += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let started = Instant::now();
        let Err(err) = attempt(per_attempt.min(left).max(MIN_ATTEMPT)) else {
            break Ok(());
        };
        let wait = backoff(n);
        let room = deadline.saturating_duration_since(Instant::now());
        if !err.retryable() || room < wait + MIN_ATTEMPT {
            break Err(err);
        }
        let (took, pause) = (started.elapsed().as_secs_f64(), wait.as_secs_f64());
        let line = format!("attempt {n} failed after {took:.1} s: {err}; retrying in {pause:.1} s");
        retries.push(line);
        std::thread::sleep(wait);
    };
    Outcome {
        attempts: n,
        result,
        retries,
    }
}

/// One HTTP request, fully built (so tests can look at it without a server).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP client for one channel: its CA file (if any) is loaded once.
pub struct Http {
    agent: ureq::Agent,
}

impl Http {
    pub fn new(ca_file: Option<&Path>) -> Result<Http, NotifyError> {
        use ureq::tls::{Certificate, RootCerts, TlsConfig};
        let roots = match ca_file {
            // With a CA file, trust exactly what it holds: the point is a private CA or a self-signed server.
            Some(p) => {
                let pem = read_ca_file(p)?;
                let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                        _ => None,
                    })
                    .collect();
                if certs.is_empty() {
                    let why = format!("ca_file {} holds no PEM certificate", p.display());
                    return Err(NotifyError::Setup(why));
                }
                RootCerts::new_with_certs(&certs)
            }
            // The host's trust store, so a CA the admin installed (update-ca-certificates) works too.
            None => RootCerts::PlatformVerifier,
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("proxkeep/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .build();
        Ok(Http {
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// Send once; 2xx is success.
    pub fn send(&self, req: &HttpRequest, timeout: Duration) -> Result<(), NotifyError> {
        let mut b = Request::builder().method(req.method).uri(&req.url);
        for (k, v) in &req.headers {
            b = b.header(k, v);
        }
        // The URL may carry a secret (Telegram's token): say what is wrong with it, not what it is.
        let request = b
            .body(req.body.clone())
            .map_err(|e| NotifyError::Setup(format!("cannot build the request: {e}")))?;
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(timeout))
            .build();
        let mut resp = self.agent.run(request).map_err(|e| map_error(e, timeout))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = clip(body.trim(), ERROR_BODY_CHARS);
        Err(NotifyError::Status { status, body })
    }
}

/// A timeout names the channel's `timeout` (the attempt's own duration is logged beside it).
fn map_error(e: ureq::Error, timeout: Duration) -> NotifyError {
    // ureq's error has no source chain: look into the two variants that can carry rustls' verdict.
    let tls = match &e {
        ureq::Error::Rustls(r) => tls_rejection(r),
        ureq::Error::Io(io) => tls_rejection(io),
        _ => None,
    };
    if let Some(t) = tls {
        return NotifyError::Tls(t);
    }
    use std::io::ErrorKind::{TimedOut, WouldBlock};
    let timeout = || NotifyError::Timeout(timeout.as_secs_f64());
    match e {
        ureq::Error::Timeout(_) => timeout(),
        ureq::Error::Io(io) if matches!(io.kind(), TimedOut | WouldBlock) => timeout(),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            NotifyError::Setup("invalid URL (see the channel's `url`)".into())
        }
        other => NotifyError::Transport(other.to_string()),
    }
}

pub fn read_ca_file(p: &Path) -> Result<Vec<u8>, NotifyError> {
    std::fs::read(p)
        .map_err(|e| NotifyError::Setup(format!("cannot read ca_file {}: {e}", p.display())))
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    #[test]
    fn classification() {
        let s = |status| NotifyError::Status {
            status,
            body: String::new(),
        };
        assert!(s(500).retryable() && s(503).retryable());
        assert!(
            !s(400).retryable()
                && !s(401).retryable()
                && !s(404).retryable()
                && !s(429).retryable()
        );
        assert!(NotifyError::Timeout(1.0).retryable());
        assert!(NotifyError::Transport("refused".into()).retryable());
        assert!(!NotifyError::Setup("x".into()).retryable());
        assert!(
            !NotifyError::Smtp {
                message: "535".into(),
                permanent: true
            }
            .retryable()
        );
        assert!(
            NotifyError::Smtp {
                message: "421".into(),
                permanent: false
            }
            .retryable()
        );
        assert_eq!(s(401).to_string(), "HTTP 401");
    }

    #[test]
    fn retries_until_success_then_stops() {
        let calls = Cell::new(0);
        let out = with_retries(
            Instant::now() + Duration::from_secs(10),
            Duration::from_secs(1),
            |_| {
                calls.set(calls.get() + 1);
                if calls.get() < 3 {
                    Err(NotifyError::Status {
                        status: 502,
                        body: "bad gateway".into(),
                    })
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!((out.attempts, out.result.is_ok()), (3, true));
        assert_eq!(out.retries.len(), 2);
        assert!(
            out.retries[0].contains("attempt 1 failed")
                && out.retries[0].contains("HTTP 502: bad gateway")
        );
    }

    #[test]
    fn no_retry_on_4xx() {
        let calls = Cell::new(0);
        let out = with_retries(
            Instant::now() + Duration::from_secs(10),
            Duration::from_secs(1),
            |_| {
                calls.set(calls.get() + 1);
                Err(NotifyError::Status {
                    status: 401,
                    body: String::new(),
                })
            },
        );
        assert_eq!((calls.get(), out.attempts), (1, 1));
        assert!(out.retries.is_empty());
    }

    #[test]
    fn budget_bounds_the_attempts() {
        let start = Instant::now();
        let calls = Cell::new(0);
        let out = with_retries(
            start + Duration::from_millis(1600),
            Duration::from_secs(5),
            |t| {
                calls.set(calls.get() + 1);
                assert!(t <= Duration::from_millis(1600));
                Err(NotifyError::Transport("connection refused".into()))
            },
        );
        // 0 s try, 0.5 s pause, try, 1 s pause, try at 1.5 s would leave < 0.2 s: stops after 2.
        assert_eq!(out.attempts, 2, "{:?}", out.retries);
        assert!(out.result.is_err());
        assert!(start.elapsed() < Duration::from_millis(1600));
    }

    #[test]
    fn clip_cuts_on_characters() {
        assert_eq!(clip("äöü", 2), "äö…");
        assert_eq!(clip("ab", 2), "ab");
    }
}
