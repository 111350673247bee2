//! Email: a multipart/alternative message (text + HTML) sent through sendmail (what PVE and PBS ship with
//! postfix, and what Proxmox's own notifications use) or SMTP (implicit TLS, STARTTLS, or plain to a local relay).

use super::deliver::{NotifyError, clip, read_ca_file};
use super::report::Report;
use crate::config::{EmailConfig, MailTransport, SmtpTls};
use crate::runner::{self, CommandSpec, RunOptions, Status};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// sendmail's "temporary failure, try again" exit status (sysexits.h EX_TEMPFAIL).
const EX_TEMPFAIL: i32 = 75;

pub fn message(c: &EmailConfig, r: &Report) -> Result<Message, NotifyError> {
    let from: Mailbox = match &c.from {
        Some(f) => f.parse(),
        None => format!("proxkeep <proxkeep@{}>", r.host).parse(),
    }
    .map_err(|e| NotifyError::Setup(format!("sender address: {e} (set `from`)")))?;
    let mut b = Message::builder().from(from).subject(r.subject()).header(
        lettre::message::header::UserAgent::from(format!("proxkeep/{}", r.version)),
    );
    for to in &c.to {
        let bad = |e| NotifyError::Setup(format!("recipient {to}: {e}"));
        b = b.to(to.parse().map_err(bad)?);
    }
    b.multipart(MultiPart::alternative_plain_html(r.text(), r.html()))
        .map_err(|e| NotifyError::Setup(format!("cannot build the message: {e}")))
}

/// The sendmail program: the configured one, else `sendmail` on PATH, else where Debian's MTAs put it
/// (cron's PATH lacks /usr/sbin).
pub fn sendmail_program(c: &EmailConfig) -> String {
    if let Some(p) = &c.sendmail {
        return p.clone();
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("sendmail"))
            .find(|f| f.is_file())
    });
    on_path
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/sendmail"))
        .display()
        .to_string()
}

pub fn send(c: &EmailConfig, msg: &Message, timeout: Duration) -> Result<(), NotifyError> {
    match c.transport {
        MailTransport::Sendmail => send_sendmail(c, msg, timeout),
        MailTransport::Smtp => send_smtp(c, msg, timeout),
    }
}

fn send_sendmail(c: &EmailConfig, msg: &Message, timeout: Duration) -> Result<(), NotifyError> {
    let program = sendmail_program(c);
    // -t: recipients from the headers; -oi: a line with a single dot is not the end of the message.
    let spec = CommandSpec::new(program.clone(), &["-t", "-oi"]);
    let opts = RunOptions {
        timeout,
        ..Default::default()
    };
    // Never cancelled: a SIGTERM that stopped the backup is exactly what the mail must still report.
    let never = AtomicBool::new(false);
    let r = runner::run_with_input(&spec, Some(&msg.formatted()), &opts, &never);
    let stderr = clip(&r.stderr_tail(300), 300);
    match r.status {
        Status::Exited(0) => Ok(()),
        Status::Exited(code) => Err(NotifyError::Sendmail {
            message: format!("{program} exited with {code}: {stderr}"),
            temporary: code == EX_TEMPFAIL,
        }),
        Status::TimedOut => Err(NotifyError::Timeout(timeout.as_secs_f64())),
        Status::Absent => Err(NotifyError::Setup(format!(
            "{program} not found: install an MTA (postfix) or use transport = \"smtp\""
        ))),
        other => Err(NotifyError::Sendmail {
            message: format!("{program} {other}: {stderr}"),
            temporary: false,
        }),
    }
}

fn send_smtp(c: &EmailConfig, msg: &Message, timeout: Duration) -> Result<(), NotifyError> {
    let host = c.host.clone().unwrap_or_default();
    let tls_params = || -> Result<TlsParameters, NotifyError> {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(ca) = &c.ca_file {
            let cert = Certificate::from_pem(&read_ca_file(ca)?)
                .map_err(|e| NotifyError::Setup(format!("ca_file {}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build()
            .map_err(|e| NotifyError::Setup(format!("TLS setup: {e}")))
    };
    let tls = match c.tls {
        SmtpTls::Starttls => Tls::Required(tls_params()?),
        SmtpTls::Tls => Tls::Wrapper(tls_params()?),
        SmtpTls::None => Tls::None,
    };
    let mut b = SmtpTransport::builder_dangerous(host)
        .port(c.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(u), Some(p)) = (&c.username, &c.password) {
        b = b.credentials(Credentials::new(u.clone(), p.clone()));
    }
    b.build().send(msg).map(|_| ()).map_err(|e| {
        if e.is_timeout() {
            return NotifyError::Timeout(timeout.as_secs_f64());
        }
        // 5xx replies (a rejected password, an unknown recipient), TLS verification and client errors will not
        // change on a retry; 4xx replies and dropped connections may. lettre reports a certificate the handshake
        // refused as a network error, so look for rustls' verdict in the chain.
        let permanent = e.is_permanent()
            || e.is_tls()
            || e.is_client()
            || super::deliver::tls_rejection(&e).is_some();
        // The error and its sources, `: `-joined.
        let message = format!("{:#}", anyhow::Error::from(e));
        NotifyError::Smtp { message, permanent }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::report::RunInfo;
    use jiff::Timestamp;

    #[test]
    fn message_has_both_parts_and_the_subject() {
        let c = EmailConfig {
            name: "m".into(),
            on: vec![],
            timeout: Duration::from_secs(1),
            retry_budget: Duration::from_secs(1),
            to: vec!["root@example.com".into(), "Ops <ops@example.com>".into()],
            from: None,
            transport: MailTransport::Sendmail,
            sendmail: Some("/bin/false".into()),
            host: None,
            port: 25,
            tls: SmtpTls::None,
            username: None,
            password: None,
            ca_file: None,
        };
        let r = Report::sample(&RunInfo {
            host: "pve1".into(),
            role: "pve".into(),
            started: Timestamp::from_second(1_767_225_600).unwrap(),
            ended: Timestamp::from_second(1_767_225_601).unwrap(),
        });
        let text = String::from_utf8(message(&c, &r).unwrap().formatted()).unwrap();
        assert!(
            text.contains("Subject: [proxkeep] pve1: backup ok (test)"),
            "{text}"
        );
        assert!(text.contains("From: proxkeep <proxkeep@pve1>"), "{text}");
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("text/plain") && text.contains("text/html"));
        assert_eq!(sendmail_program(&c), "/bin/false");
        assert!(matches!(
            send(&c, &message(&c, &r).unwrap(), Duration::from_secs(5)),
            Err(NotifyError::Sendmail {
                temporary: false,
                ..
            })
        ));
    }
}
