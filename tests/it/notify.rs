//! Notifications and metrics (issue 7), end to end through `proxkeep backup` / `proxkeep notify test`.
//!
//! Real components where they exist here: an aiosmtpd SMTP server with STARTTLS + AUTH on loopback
//! (tests/support/smtpd_auth.py), a stub `sendmail` on PATH, `promtool` and `openssl`. Gotify, ntfy, the Telegram
//! Bot API and webhook receivers have no installable server, so those tests are **protocol-shape tests against
//! a loopback stand-in** (tests/support/notify_sink.py) that speaks each service's documented request and
//! response format; they prove what we send, not that the real service accepts it.

use crate::util::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GOTIFY_TOKEN: &str = "AgotifyAppTok3n";
const TG_TOKEN: &str = "123456:TEST-tg-Tok3n";
const NTFY_TOKEN: &str = "tk_ntfyAccessTok3n";
const HMAC_KEY: &str = "webhook-hmac-k3y";
const PING_UUID: &str = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// The stand-in for Gotify / ntfy / Telegram / webhooks / pings; killed on drop.
pub(crate) struct Sink {
    child: Child,
    port: u16,
    https: bool,
}

impl Sink {
    pub(crate) fn start(dir: &Path) -> Sink {
        Sink::start_with(dir, None)
    }
    /// `tls`: (cert, key) to serve HTTPS.
    fn start_with(dir: &Path, tls: Option<(&Path, &Path)>) -> Sink {
        let mut cmd = Command::new(tool("python3"));
        cmd.arg(repo().join("tests/support/notify_sink.py"))
            .args(["127.0.0.1", "0"])
            .arg(dir.join("sink.jsonl"))
            .args([GOTIFY_TOKEN, TG_TOKEN]);
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("notify_sink.py did not start: {line:?}"));
        Sink {
            child,
            port,
            https: tls.is_some(),
        }
    }
    pub(crate) fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
    /// Every request the sink received (its own control endpoints are not recorded).
    pub(crate) fn requests(&self) -> Vec<serde_json::Value> {
        let text = ureq::get(format!("{}/_requests", self.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
    fn on_path(&self, prefix: &str) -> Vec<serde_json::Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"].as_str().unwrap().starts_with(prefix))
            .collect()
    }
    /// The next `count` requests answer `status`.
    fn fail(&self, status: u16, count: u32) {
        ureq::post(format!(
            "{}/_fail?status={status}&count={count}",
            self.url()
        ))
        .send_empty()
        .unwrap();
    }
    /// The next `count` requests answer only after `secs`.
    fn slow(&self, secs: u32, count: u32) {
        ureq::post(format!("{}/_slow?seconds={secs}&count={count}", self.url()))
            .send_empty()
            .unwrap();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private CA (what `ca_file` is for) and a server certificate it signed for localhost / 127.0.0.1:
/// (ca.pem, cert.pem, key.pem).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, cert, key) = (
        dir.join("test-ca.pem"),
        dir.join("server-cert.pem"),
        dir.join("server-key.pem"),
    );
    let openssl = tool("openssl");
    sh_ok(&format!(
        "set -e; cd '{d}'
         {openssl} req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca-key.pem -out '{ca}' -subj '/CN=proxkeep test CA' 2>/dev/null
         {openssl} req -newkey rsa:2048 -nodes -keyout '{key}' -out server.csr -subj /CN=localhost 2>/dev/null
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
         {openssl} x509 -req -in server.csr -CA '{ca}' -CAkey ca-key.pem -CAcreateserial -days 2 -extfile server.ext -out '{cert}' 2>/dev/null",
        d = dir.display(),
        ca = ca.display(),
        key = key.display(),
        cert = cert.display()
    ));
    (ca, cert, key)
}

/// Debian's python3 (where python3-aiosmtpd lives), whatever python3 comes first on PATH.
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// aiosmtpd with STARTTLS required and AUTH (user `alert`, password `s3cret-Passw0rd`), storing into a Maildir.
struct Smtpd {
    child: Child,
    port: u16,
    maildir: PathBuf,
    ca: PathBuf,
}

const SMTP_PASSWORD: &str = "s3cret-Passw0rd";

impl Smtpd {
    fn start(dir: &Path) -> Smtpd {
        assert!(
            Path::new(DEBIAN_PYTHON).exists(),
            "{DEBIAN_PYTHON} missing (see .ci/run)"
        );
        let (ca, cert, key) = private_ca(dir);
        let maildir = dir.join("maildir");
        let port = free_port();
        let mut child = Command::new(DEBIAN_PYTHON)
            .arg(repo().join("tests/support/smtpd_auth.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(&maildir)
            .arg(&cert)
            .arg(&key)
            .args(["alert", SMTP_PASSWORD])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("listening"),
            "smtpd_auth.py did not start (is python3-aiosmtpd installed? see .ci/run): {line:?}"
        );
        Smtpd {
            child,
            port,
            maildir,
            ca,
        }
    }

    /// Received messages, parsed by Python's email package: subject, recipients, MIME types, text part.
    fn messages(&self) -> Vec<serde_json::Value> {
        let out = sh_ok(&format!(
            "{DEBIAN_PYTHON} - '{}' <<'PY'
import json, mailbox, sys
out = []
for m in mailbox.Maildir(sys.argv[1], create=False):
    text = next(p.get_payload(decode=True).decode() for p in m.walk() if p.get_content_type() == 'text/plain')
    out.append({{'subject': m['Subject'], 'rcpt': m['X-RcptTo'], 'from': m['From'],
                'types': [p.get_content_type() for p in m.walk()], 'text': text}})
print(json.dumps(out))
PY",
            self.maildir.display()
        ));
        serde_json::from_str::<serde_json::Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one run log of the env's last run.
fn run_log(env: &Env) -> String {
    let mut logs: Vec<PathBuf> = fs::read_dir(&env.logs)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.sort();
    logs.last()
        .map(|p| fs::read_to_string(p).unwrap())
        .unwrap_or_default()
}

fn prom(env: &Env) -> PathBuf {
    env.path("textfile/proxkeep.prom")
}

/// `promtool check metrics` must accept the file (exit 0: no lint problems either).
#[track_caller]
fn promtool_ok(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let out = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(fs::File::open(path).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.ends_with('\n'));
    text
}

/// Value of one series in a textfile.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

fn header<'a>(req: &'a serde_json::Value, name: &str) -> &'a str {
    req["headers"][name].as_str().unwrap_or("")
}

/// Every channel kind pointed at the sink, each wanting every outcome.
fn all_channels(sink: &Sink) -> String {
    let u = sink.url();
    format!(
        r#"
[metrics]
textfile = "{prom}"

[[notify.telegram]]
name = "tg"
on = ["failure", "warning", "success"]
bot_token = "{TG_TOKEN}"
chat_id = 4242
api_url = "{u}"

[[notify.gotify]]
name = "phone"
on = ["failure", "warning", "success"]
url = "{u}"
token = "{GOTIFY_TOKEN}"

[[notify.ntfy]]
name = "ntfy"
on = ["failure", "warning", "success"]
url = "{u}/proxkeep-alerts"
token = "{NTFY_TOKEN}"

[[notify.webhook]]
name = "hook"
on = ["failure", "warning", "success"]
url = "{u}/hook/proxkeep"
headers = {{ X-Team = "ops" }}
hmac_secret = "{HMAC_KEY}"

[[notify.webhook]]
name = "discord"
on = ["success"]
url = "{u}/hook/discord"
format = "discord"

[[notify.webhook]]
name = "slack"
on = ["success"]
method = "PUT"
url = "{u}/hook/slack"
format = "slack"

[[notify.ping]]
name = "hc"
url = "{u}/ping/{PING_UUID}"
"#,
        prom = "PROM_PATH",
    )
}

fn with_prom(env: &Env, text: &str) -> String {
    text.replace("PROM_PATH", &prom(env).display().to_string())
}

/// No configured secret appears verbatim in what leaves the process, except where an API needs it.
#[track_caller]
fn assert_no_secret_leaks(env: &Env, r: &Run, sink: &Sink) {
    let secrets = [GOTIFY_TOKEN, TG_TOKEN, NTFY_TOKEN, HMAC_KEY, PING_UUID];
    let log = run_log(env);
    for s in secrets {
        assert!(!log.contains(s), "run log contains {s}:\n{log}");
        assert!(!r.stdout().contains(s), "stdout contains {s}");
        assert!(!r.stderr().contains(s), "stderr contains {s}");
        for req in sink.requests() {
            assert!(
                !req["body"].as_str().unwrap().contains(s),
                "request body contains {s}: {req}"
            );
        }
    }
    // Where the APIs need them: Telegram's token in the path, Gotify's and ntfy's in headers, the ping UUID in the URL.
    for req in sink.requests() {
        let path = req["path"].as_str().unwrap();
        let headers = req["headers"].to_string();
        let q = req["query"].to_string();
        assert!(!q.contains(GOTIFY_TOKEN), "gotify token in a query string");
        if path.starts_with("/bot") {
            assert_eq!(path, format!("/bot{TG_TOKEN}/sendMessage"));
        } else {
            assert!(!path.contains(TG_TOKEN));
        }
        if !path.starts_with("/message") {
            assert!(!headers.contains(GOTIFY_TOKEN), "{req}");
        }
        if path != "/proxkeep-alerts" {
            assert!(!headers.contains(NTFY_TOKEN), "{req}");
        }
    }
}

#[test]
fn http_channels_send_the_documented_requests_on_success() {
    // Protocol-shape test against notify_sink.py, the stand-in for Gotify, ntfy, Telegram and webhooks.
    let mut env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    env.write_config(&with_prom(&env, &all_channels(&sink)));
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    let j = r.json();
    let sent = j["notifications"].as_array().unwrap();
    assert_eq!(sent.len(), 8, "{sent:?}"); // ping start + 6 reports + ping success
    assert!(sent.iter().all(|d| d["ok"] == true), "{sent:?}");

    let archive = env.only_archive();
    let archive_name = archive.file_name().unwrap().to_string_lossy().into_owned();

    // Telegram Bot API: POST /bot<token>/sendMessage, JSON {chat_id, text}.
    let tg = sink.on_path("/bot");
    assert_eq!(tg.len(), 1);
    assert_eq!(tg[0]["method"], "POST");
    assert_eq!(header(&tg[0], "content-type"), "application/json");
    assert_eq!(tg[0]["json"]["chat_id"], 4242);
    let text = tg[0]["json"]["text"].as_str().unwrap();
    assert!(text.starts_with("pbs1: backup ok (exit 0)"), "{text}");
    for want in [
        archive_name.as_str(),
        "host         pbs1 (pbs)",
        "zstd 3",
        "local: ok, 1 copied, 0 removed by retention",
        "retention    0 removed",
        "proxkeep     0.1.0",
    ] {
        assert!(text.contains(want), "{want:?} missing in\n{text}");
    }

    // Gotify: POST /message, token in X-Gotify-Key, JSON title/message/priority.
    let g = sink.on_path("/message");
    assert_eq!(g.len(), 1);
    assert_eq!(g[0]["method"], "POST");
    assert_eq!(header(&g[0], "x-gotify-key"), GOTIFY_TOKEN);
    assert_eq!(g[0]["json"]["title"], "pbs1: backup ok");
    assert_eq!(g[0]["json"]["priority"], 2);
    assert!(
        g[0]["json"]["message"]
            .as_str()
            .unwrap()
            .contains(&archive_name)
    );

    // ntfy: POST /<topic>, plain-text body, Title/Priority/Tags headers, bearer token.
    let n = sink.on_path("/proxkeep-alerts");
    assert_eq!(n.len(), 1);
    assert_eq!(n[0]["method"], "POST");
    assert_eq!(header(&n[0], "title"), "pbs1: backup ok");
    assert_eq!(header(&n[0], "priority"), "3");
    assert_eq!(header(&n[0], "tags"), "white_check_mark,proxkeep");
    assert_eq!(
        header(&n[0], "authorization"),
        format!("Bearer {NTFY_TOKEN}")
    );
    assert!(
        n[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("pbs1: backup ok")
    );

    // Webhook, json: our documented schema, extra header, HMAC-SHA256 over the exact body (checked with openssl).
    let h = sink.on_path("/hook/proxkeep");
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["method"], "POST");
    assert_eq!(header(&h[0], "x-team"), "ops");
    let body = h[0]["body"].as_str().unwrap();
    let body_file = env.path("hook-body.json");
    fs::write(&body_file, body).unwrap();
    let mac = sh_ok(&format!(
        "{} dgst -sha256 -hmac '{HMAC_KEY}' -r '{}'",
        tool("openssl"),
        body_file.display()
    ));
    let mac = mac.split_whitespace().next().unwrap();
    assert_eq!(
        header(&h[0], "x-proxkeep-signature"),
        format!("sha256={mac}")
    );
    let doc = &h[0]["json"];
    assert_eq!(doc["schema"], "proxkeep.report/1");
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["event"], "success");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["host"], "pbs1");
    assert_eq!(doc["role"], "pbs");
    assert_eq!(doc["version"], "0.1.0");
    assert_eq!(doc["archive"]["name"], archive_name.as_str());
    assert_eq!(
        doc["archive"]["size"].as_u64().unwrap(),
        fs::metadata(&archive).unwrap().len()
    );
    assert_eq!(doc["tiers"][0]["tier"], "local");
    assert_eq!(doc["tiers"][0]["archives"], 1);
    assert!(doc["ended"].as_i64().unwrap() >= doc["started"].as_i64().unwrap());
    assert_eq!(doc["problems"], serde_json::json!([]));
    assert_eq!(doc["test"], false);

    // Discord ({"content"} ≤ 2000 chars) and Slack ({"text"}, here sent with PUT).
    let d = sink.on_path("/hook/discord");
    assert!(d[0]["json"]["content"].as_str().unwrap().chars().count() <= 2000);
    let s = sink.on_path("/hook/slack");
    assert_eq!(s[0]["method"], "PUT");
    assert!(
        s[0]["json"]["text"]
            .as_str()
            .unwrap()
            .contains(&archive_name)
    );

    // Dead-man ping: GET <url>/start first, then GET <url>.
    let p = sink.on_path("/ping/");
    let seen: Vec<(String, String)> = p
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap().into(),
                r["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("GET".to_string(), format!("/ping/{PING_UUID}/start")),
            ("GET".to_string(), format!("/ping/{PING_UUID}"))
        ]
    );
    assert!(p[0]["seq"].as_i64() < sink.on_path("/bot")[0]["seq"].as_i64());

    assert_no_secret_leaks(&env, &r, &sink);
    let log = run_log(&env);
    assert!(
        log.contains("notify telegram tg: sent (1 attempt)"),
        "{log}"
    );
}

#[test]
fn a_preflight_failure_reports_exit_4_pings_fail_with_the_log_tail_and_writes_metrics() {
    let mut env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    env.write_config(&with_prom(&env, &all_channels(&sink)));
    let not_a_dir = env.path("not-a-dir");
    fs::write(&not_a_dir, "x").unwrap();
    let r = env.run(&["backup", "--dir", not_a_dir.to_str().unwrap()]);
    r.expect(4);
    // Failure-only kinds got it; the success-only webhooks did not.
    assert!(sink.on_path("/hook/discord").is_empty());
    let n = sink.on_path("/proxkeep-alerts");
    assert_eq!(n.len(), 1);
    assert_eq!(header(&n[0], "title"), "pbs1: backup FAILED");
    assert_eq!(header(&n[0], "priority"), "5");
    assert_eq!(header(&n[0], "tags"), "rotating_light,proxkeep");
    let g = sink.on_path("/message");
    assert_eq!(g[0]["json"]["priority"], 8);
    let doc = &sink.on_path("/hook/proxkeep")[0]["json"];
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["event"], "failure");
    assert_eq!(doc["exit_code"], 4);
    assert!(doc.get("archive").is_none());
    assert!(
        doc["problems"][0]
            .as_str()
            .unwrap()
            .contains("backup directory"),
        "{doc}"
    );
    // Ping: /start, then POST /fail with the log tail as body.
    let p = sink.on_path("/ping/");
    assert_eq!(p.len(), 2);
    assert_eq!(p[1]["method"], "POST");
    assert_eq!(p[1]["path"], format!("/ping/{PING_UUID}/fail"));
    let tail = p[1]["body"].as_str().unwrap();
    assert!(tail.contains("host pbs1 role pbs"), "{tail}");
    assert!(tail.contains("backup directory"), "{tail}");

    let text = promtool_ok(&prom(&env));
    assert_eq!(metric(&text, "proxkeep_run_status"), 2.0);
    assert_eq!(metric(&text, "proxkeep_run_exit_code"), 4.0);
    assert_eq!(metric(&text, "proxkeep_archive_bytes"), 0.0);
    assert_eq!(
        metric(&text, "proxkeep_last_success_timestamp_seconds"),
        0.0
    );
    assert_no_secret_leaks(&env, &r, &sink);
}

#[test]
fn a_long_report_reaches_telegram_in_pieces_of_at_most_4096_characters() {
    let mut env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    env.write_config(&format!(
        "[[notify.telegram]]\nbot_token = \"{TG_TOKEN}\"\nchat_id = \"@ops\"\napi_url = \"{}\"\n",
        sink.url()
    ));
    // A 3000-character path that is not a directory: the error and the failed check both quote it.
    let mut deep = env.path("deep");
    for i in 0..12 {
        deep.push(format!("{i:02}{}", "d".repeat(240)));
    }
    fs::create_dir_all(&deep).unwrap();
    let not_a_dir = deep.join("not-a-dir");
    fs::write(&not_a_dir, "x").unwrap();
    env.run(&["backup", "--dir", not_a_dir.to_str().unwrap()])
        .expect(4);
    let tg = sink.on_path("/bot");
    assert!(tg.len() >= 2, "{} messages", tg.len());
    let texts: Vec<&str> = tg
        .iter()
        .map(|r| r["json"]["text"].as_str().unwrap())
        .collect();
    assert!(texts.iter().all(|t| t.encode_utf16().count() <= 4096));
    assert!(tg.iter().all(|r| r["json"]["chat_id"] == "@ops"));
    let whole = texts.concat();
    assert!(whole.starts_with("pbs1: backup FAILED (exit 4)"), "{whole}");
    assert!(
        whole.contains("proxkeep     0.1.0"),
        "the last piece arrived too: {:?}",
        texts
            .iter()
            .map(|t| (t.len(), t.chars().rev().take(150).collect::<String>()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        whole.matches(not_a_dir.to_str().unwrap()).count(),
        3,
        "headline, error and check line"
    );
}

#[test]
fn a_held_lock_reports_exit_5() {
    let mut env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    env.write_config(&with_prom(&env, &all_channels(&sink)));
    let lock = fs::File::create(env.lock_file()).unwrap();
    lock.try_lock().unwrap();
    let r = env.run(&["backup", "--json"]);
    r.expect(5);
    let j = r.json();
    assert_eq!(j["status"], "failed");
    assert!(j["notifications"].as_array().unwrap().len() >= 5, "{j}");
    let doc = &sink.on_path("/hook/proxkeep")[0]["json"];
    assert_eq!(doc["exit_code"], 5);
    assert!(
        doc["error"].as_str().unwrap().contains("holds the lock"),
        "{doc}"
    );
    let text = promtool_ok(&prom(&env));
    assert_eq!(metric(&text, "proxkeep_run_exit_code"), 5.0);
    drop(lock);
}

#[test]
fn a_config_error_reports_to_the_channels_the_file_still_names() {
    let env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    let good = fs::read_to_string(&env.config).unwrap();
    let u = sink.url();
    let notify = format!(
        "[metrics]\ntextfile = \"{}\"\n[[notify.ntfy]]\nurl = \"{u}/proxkeep-alerts\"\n[[notify.ping]]\nurl = \"{u}/ping/{PING_UUID}\"\n",
        prom(&env).display()
    );
    fs::write(
        &env.config,
        format!("{good}[compression]\nlevle = 5\n{notify}"),
    )
    .unwrap();
    let r = env.run(&["backup"]);
    r.expect(2);
    assert!(
        r.stderr().contains("did you mean `compression.level`"),
        "{}",
        r.stderr()
    );
    let n = sink.on_path("/proxkeep-alerts");
    assert_eq!(n.len(), 1, "{:?}", sink.requests());
    assert_eq!(header(&n[0], "title"), "pbs1: backup FAILED");
    let body = n[0]["body"].as_str().unwrap();
    assert!(
        body.contains("configuration error") && body.contains("levle"),
        "{body}"
    );
    assert_eq!(sink.on_path(&format!("/ping/{PING_UUID}/fail")).len(), 1);
    let text = promtool_ok(&prom(&env));
    assert_eq!(metric(&text, "proxkeep_run_exit_code"), 2.0);

    // A file that is not even TOML names nobody: exit 2, nothing sent, nothing written.
    fs::remove_file(prom(&env)).unwrap();
    let before = sink.requests().len();
    fs::write(&env.config, format!("{good}[compression\n{notify}")).unwrap();
    env.run(&["backup"]).expect(2);
    assert_eq!(sink.requests().len(), before);
    assert!(!prom(&env).exists());
}

#[test]
fn retries_5xx_with_backoff_and_never_4xx_exit_code_unchanged() {
    let mut env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    let u = sink.url();
    env.write_config(&format!(
        "[[notify.gotify]]\nname = \"good\"\non = [\"success\"]\nurl = \"{u}\"\ntoken = \"{GOTIFY_TOKEN}\"\n"
    ));
    sink.fail(500, 2);
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    assert_eq!(sink.on_path("/message").len(), 3, "two 500s, then success");
    let d = &r.json()["notifications"][0];
    assert_eq!(
        (d["ok"].as_bool(), d["attempts"].as_u64()),
        (Some(true), Some(3))
    );
    let log = run_log(&env);
    assert!(
        log.contains("attempt 1 failed") && log.contains("HTTP 500"),
        "{log}"
    );
    assert!(
        log.contains("retrying in 0.5 s") && log.contains("retrying in 1.0 s"),
        "{log}"
    );

    // 401 (wrong token) is the server saying no: one request, no retry, logged, exit still 0.
    let mut env = Env::new("pbs-node");
    env.write_config(&format!(
        "[[notify.gotify]]\nname = \"bad\"\non = [\"success\"]\nurl = \"{u}\"\ntoken = \"wrong-token\"\n"
    ));
    let before = sink.on_path("/message").len();
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    assert_eq!(sink.on_path("/message").len(), before + 1);
    let d = &r.json()["notifications"][0];
    assert_eq!(
        (d["ok"].as_bool(), d["attempts"].as_u64()),
        (Some(false), Some(1))
    );
    assert!(d["error"].as_str().unwrap().starts_with("HTTP 401"), "{d}");
    let log = run_log(&env);
    assert!(
        log.contains("notify gotify bad: failed after 1 attempt: HTTP 401"),
        "{log}"
    );
    assert!(log.contains("exit code is unchanged"), "{log}");
    assert!(!log.contains("wrong-token"), "{log}");
}

#[test]
fn a_slow_server_times_out_and_the_retry_gets_through() {
    let mut env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    env.write_config(&format!(
        "[[notify.ntfy]]\non = [\"success\"]\ntimeout = \"1s\"\nurl = \"{}/proxkeep-alerts\"\n",
        sink.url()
    ));
    sink.slow(4, 1);
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    assert_eq!(sink.on_path("/proxkeep-alerts").len(), 2);
    let d = &r.json()["notifications"][0];
    assert_eq!(
        (d["ok"].as_bool(), d["attempts"].as_u64()),
        (Some(true), Some(2))
    );
    assert!(
        run_log(&env).contains("no answer within 1.0 s"),
        "{}",
        run_log(&env)
    );
}

#[test]
fn connection_refused_is_retried_until_the_budget_ends_and_counted_in_metrics() {
    let mut env = Env::new("pbs-node");
    let dead = free_port(); // nothing listens there
    let text = format!(
        "[metrics]\ntextfile = \"{}\"\n[[notify.webhook]]\nname = \"down\"\non = [\"success\"]\nretry_budget = \"3s\"\nurl = \"http://127.0.0.1:{dead}/hook\"\n[[notify.ping]]\nname = \"hc\"\nstart = false\nretry_budget = \"1s\"\nurl = \"http://127.0.0.1:{dead}/ping/{PING_UUID}\"\n",
        prom(&env).display()
    );
    env.write_config(&text);
    let t = Instant::now();
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let sent = r.json()["notifications"].as_array().unwrap().clone();
    let hook = sent.iter().find(|d| d["channel"] == "down").unwrap();
    assert_eq!(hook["ok"], false);
    // 0.5 s + 1 s pauses fit in 3 s, a third 2 s pause does not: three attempts.
    assert_eq!(hook["attempts"], 3, "{hook}");
    let log = run_log(&env);
    assert!(
        log.contains("notify webhook down: attempt 1 failed"),
        "{log}"
    );
    assert!(
        log.contains("notify webhook down: failed after 3 attempts"),
        "{log}"
    );
    assert!(!log.contains(PING_UUID), "{log}");
    let m = promtool_ok(&prom(&env));
    assert_eq!(
        metric(&m, "proxkeep_notify_failures{channel=\"down\"}"),
        1.0
    );
    assert_eq!(metric(&m, "proxkeep_notify_failures{channel=\"hc\"}"), 1.0);
    assert_eq!(metric(&m, "proxkeep_run_status"), 0.0);
}

#[test]
fn smtp_with_starttls_auth_and_a_private_ca_delivers_a_two_part_message() {
    let mut env = Env::new("pbs-node");
    let smtpd = Smtpd::start(env.tmp.path());
    env.write_config(&format!(
        r#"
[[notify.email]]
name = "admin"
on = ["success"]
to = ["admin@example.test"]
from = "backup@pbs1.example.test"
host = "127.0.0.1"
port = {port}
tls = "starttls"
username = "alert"
password = "{SMTP_PASSWORD}"
ca_file = "{ca}"
"#,
        port = smtpd.port,
        ca = smtpd.ca.display()
    ));
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    assert_eq!(r.json()["notifications"][0]["ok"], true, "{}", r.stdout());
    let msgs = smtpd.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m["subject"], "[proxkeep] pbs1: backup ok");
    assert_eq!(m["rcpt"], "admin@example.test");
    assert_eq!(m["from"], "backup@pbs1.example.test");
    assert_eq!(
        m["types"],
        serde_json::json!(["multipart/alternative", "text/plain", "text/html"])
    );
    let archive = env.only_archive();
    let name = archive.file_name().unwrap().to_string_lossy();
    assert!(m["text"].as_str().unwrap().contains(name.as_ref()), "{m}");
    let log = run_log(&env);
    assert!(log.contains("notify email admin: sent"), "{log}");
    assert!(!log.contains(SMTP_PASSWORD) && !r.stdout().contains(SMTP_PASSWORD));
}

#[test]
fn smtp_wrong_password_is_logged_once_and_the_exit_code_stays() {
    let mut env = Env::new("pbs-node");
    let smtpd = Smtpd::start(env.tmp.path());
    env.write_config(&format!(
        "[metrics]\ntextfile = \"{}\"\n[[notify.email]]\nname = \"admin\"\non = [\"success\"]\nto = [\"admin@example.test\"]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"alert\"\npassword = \"not-the-Passw0rd\"\nca_file = \"{}\"\n",
        prom(&env).display(),
        smtpd.port,
        smtpd.ca.display()
    ));
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    let d = &r.json()["notifications"][0];
    assert_eq!(
        (d["ok"].as_bool(), d["attempts"].as_u64()),
        (Some(false), Some(1))
    );
    assert!(d["error"].as_str().unwrap().contains("535"), "{d}");
    assert!(smtpd.messages().is_empty());
    let log = run_log(&env);
    assert!(
        log.contains("notify email admin: failed after 1 attempt: SMTP"),
        "{log}"
    );
    assert!(log.contains("535"), "{log}");
    assert!(!log.contains("not-the-Passw0rd"), "{log}");
    let m = promtool_ok(&prom(&env));
    assert_eq!(
        metric(&m, "proxkeep_notify_failures{channel=\"admin\"}"),
        1.0
    );
}

#[test]
fn smtp_with_an_untrusted_certificate_fails_once_without_retries() {
    let mut env = Env::new("pbs-node");
    let smtpd = Smtpd::start(env.tmp.path());
    // No ca_file: the system store does not know the test CA, and STARTTLS never falls back to plain.
    env.write_config(&format!(
        "[[notify.email]]\nname = \"admin\"\non = [\"success\"]\nto = [\"admin@example.test\"]\nhost = \"127.0.0.1\"\nport = {}\nusername = \"alert\"\npassword = \"{SMTP_PASSWORD}\"\n",
        smtpd.port
    ));
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    let d = &r.json()["notifications"][0];
    assert_eq!(
        (d["ok"].as_bool(), d["attempts"].as_u64()),
        (Some(false), Some(1)),
        "{d}"
    );
    assert!(d["error"].as_str().unwrap().contains("certificate"), "{d}");
    assert!(smtpd.messages().is_empty());
}

#[test]
fn https_channels_trust_the_ca_file_and_refuse_an_unknown_certificate_without_retrying() {
    let mut env = Env::new("pbs-node");
    let (ca, cert, key) = private_ca(env.tmp.path());
    let sink = Sink::start_with(env.tmp.path(), Some((&cert, &key)));
    let u = sink.url();
    env.write_config(&format!(
        "[[notify.ntfy]]\nname = \"trusted\"\non = [\"success\"]\nurl = \"{u}/proxkeep-alerts\"\nca_file = \"{}\"\n\
         [[notify.gotify]]\nname = \"untrusted\"\non = [\"success\"]\nurl = \"{u}\"\ntoken = \"{GOTIFY_TOKEN}\"\n",
        ca.display()
    ));
    let r = env.run(&["backup", "--json"]);
    r.expect(0);
    let sent = r.json()["notifications"].as_array().unwrap().clone();
    assert_eq!(sent[0]["channel"], "untrusted");
    assert_eq!(
        (sent[0]["ok"].as_bool(), sent[0]["attempts"].as_u64()),
        (Some(false), Some(1)),
        "{sent:?}"
    );
    assert!(
        sent[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("TLS: invalid peer certificate"),
        "{sent:?}"
    );
    assert_eq!(sent[1]["channel"], "trusted");
    assert_eq!(sent[1]["ok"], true, "{sent:?}");
    // Only the trusted request reached the server (the other never finished its handshake).
    let reqs = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&[
                        ureq::tls::Certificate::from_pem(&fs::read(&ca).unwrap()).unwrap(),
                    ]))
                    .build(),
            )
            .build(),
    )
    .get(format!("{u}/_requests"))
    .call()
    .unwrap()
    .body_mut()
    .read_to_string()
    .unwrap();
    let reqs: Vec<serde_json::Value> = serde_json::from_str(&reqs).unwrap();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["path"], "/proxkeep-alerts");
}

#[test]
fn sendmail_from_path_gets_a_message_that_parses() {
    let mut env = Env::new("pbs-node");
    let saved = env.path("sendmail.eml");
    env.stub(
        "sendmail",
        &format!(
            "echo \"$@\" > '{}.args'\ncat > '{}'",
            saved.display(),
            saved.display()
        ),
    );
    // Default transport (sendmail, found on PATH); default `on` (failure, warning): make the run fail.
    env.write_config("[[notify.email]]\nto = [\"root@localhost\", \"Ops <ops@example.test>\"]\n");
    let lock = fs::File::create(env.lock_file()).unwrap();
    lock.try_lock().unwrap();
    env.run(&["backup"]).expect(5);
    drop(lock);
    assert_eq!(
        fs::read_to_string(format!("{}.args", saved.display()))
            .unwrap()
            .trim(),
        "-t -oi"
    );
    let out = sh_ok(&format!(
        "python3 - '{}' <<'PY'
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)
print(json.dumps({{'subject': m['Subject'], 'to': m['To'], 'from': m['From'],
    'types': [p.get_content_type() for p in m.walk()],
    'text': m.get_body(('plain',)).get_content(), 'html': m.get_body(('html',)).get_content()}}))
PY",
        saved.display()
    ));
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m["subject"], "[proxkeep] pbs1: backup FAILED");
    assert_eq!(m["from"], "proxkeep <proxkeep@pbs1>");
    assert!(m["to"].as_str().unwrap().contains("ops@example.test"));
    assert_eq!(
        m["types"],
        serde_json::json!(["multipart/alternative", "text/plain", "text/html"])
    );
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .contains("status       FAILED (exit 5)"),
        "{m}"
    );
    assert!(
        m["html"].as_str().unwrap().contains("holds the lock"),
        "{m}"
    );

    // A success is not in the default `on`: no mail.
    fs::remove_file(&saved).unwrap();
    env.run(&["backup"]).expect(0);
    assert!(!saved.exists());
}

#[test]
fn promtool_accepts_the_textfile_after_success_failing_tier_and_failure() {
    let mut env = Env::new("pbs-node");
    let plain = env.path("plain-dir");
    fs::create_dir_all(&plain).unwrap();
    let metrics = format!("[metrics]\ntextfile = \"{}\"\n", prom(&env).display());
    env.write_config(&metrics);
    env.run(&["backup"]).expect(0);
    let ok = promtool_ok(&prom(&env));
    assert_eq!(metric(&ok, "proxkeep_run_status"), 0.0);
    assert_eq!(metric(&ok, "proxkeep_tier_archives{tier=\"local\"}"), 1.0);
    let last_success = metric(&ok, "proxkeep_last_success_timestamp_seconds");
    assert!(last_success > 1.7e9);
    assert!(
        ok.contains("proxkeep_info{version=\"0.1.0\",host=\"pbs1\",role=\"pbs\"} 1\n"),
        "{ok}"
    );
    assert_eq!(
        fs::metadata(prom(&env)).unwrap().permissions().mode() & 0o777,
        0o644
    );

    // A secondary that must be a mount point but is a plain directory: the tier fails, the run warns (exit 3),
    // and a channel with the default `on` (failure, warning) hears about it.
    std::thread::sleep(Duration::from_millis(1100)); // a new archive name (second resolution)
    let sink = Sink::start(env.tmp.path());
    env.write_config(&format!(
        "{metrics}[[secondary]]\nname = \"nas\"\npath = \"{}\"\nrequire_mount = true\n[[notify.ntfy]]\nurl = \"{}/proxkeep-alerts\"\n",
        plain.display(),
        sink.url()
    ));
    env.run(&["backup"]).expect(3);
    let n = sink.on_path("/proxkeep-alerts");
    assert_eq!(n.len(), 1);
    assert_eq!(header(&n[0], "title"), "pbs1: backup warning");
    assert_eq!(header(&n[0], "priority"), "4");
    let body = n[0]["body"].as_str().unwrap();
    assert!(
        body.contains("secondary:nas: FAILED:") && body.contains("not a mount point"),
        "{body}"
    );
    assert!(body.contains("warnings (1 of 1)"), "{body}");
    let warn = promtool_ok(&prom(&env));
    assert_eq!(metric(&warn, "proxkeep_run_status"), 1.0);
    assert_eq!(metric(&warn, "proxkeep_run_exit_code"), 3.0);
    assert_eq!(
        metric(&warn, "proxkeep_tier_ok{tier=\"secondary:nas\"}"),
        0.0
    );
    assert_eq!(metric(&warn, "proxkeep_tier_ok{tier=\"local\"}"), 1.0);
    assert_eq!(metric(&warn, "proxkeep_tier_archives{tier=\"local\"}"), 2.0);
    assert!(metric(&warn, "proxkeep_run_warnings") >= 1.0);
    let warn_success = metric(&warn, "proxkeep_last_success_timestamp_seconds");
    assert!(
        warn_success >= last_success,
        "a run with warnings still wrote an archive"
    );

    // A failed run: status 2, last success kept from the file before.
    let not_a_dir = env.path("not-a-dir");
    fs::write(&not_a_dir, "x").unwrap();
    env.run(&["backup", "--dir", not_a_dir.to_str().unwrap()])
        .expect(4);
    let failed = promtool_ok(&prom(&env));
    assert_eq!(metric(&failed, "proxkeep_run_status"), 2.0);
    assert_eq!(
        metric(&failed, "proxkeep_last_success_timestamp_seconds"),
        warn_success
    );
    assert_eq!(
        metric(&failed, "proxkeep_tier_archives{tier=\"local\"}"),
        2.0
    );
    // No temp files left next to it.
    let names: Vec<String> = fs::read_dir(prom(&env).parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["proxkeep.prom"]);
}

/// The alert rules in docs/monitoring.md pass `promtool check rules`, and the "no success for 26 h" alert
/// fires exactly when it should (`promtool test rules`).
#[test]
fn the_documented_alert_rules_check_and_fire() {
    let doc = fs::read_to_string(repo().join("docs/monitoring.md")).unwrap();
    let start = doc
        .find("```yaml\ngroups:")
        .expect("rules block in docs/monitoring.md")
        + 8;
    let rules = &doc[start..start + doc[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("proxkeep.rules.yml"), rules).unwrap();
    sh_ok(&format!(
        "cd '{}' && {} check rules proxkeep.rules.yml",
        dir.path().display(),
        tool("promtool")
    ));
    // Last success at t=0 (series sampled hourly): no alert at 25 h, alert at 27 h.
    let test = r#"rule_files: [proxkeep.rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1h
    input_series:
      - series: 'proxkeep_last_success_timestamp_seconds{instance="pve1:9100",job="node"}'
        values: '0x30'
    alert_rule_test:
      - eval_time: 25h
        alertname: ProxkeepNoRecentBackup
        exp_alerts: []
      - eval_time: 27h
        alertname: ProxkeepNoRecentBackup
        exp_alerts:
          - exp_labels: {severity: critical, instance: "pve1:9100", job: node}
            exp_annotations:
              summary: "No successful proxkeep backup on pve1:9100 for more than 26 hours"
"#;
    fs::write(dir.path().join("test.yml"), test).unwrap();
    sh_ok(&format!(
        "cd '{}' && {} test rules test.yml",
        dir.path().display(),
        tool("promtool")
    ));
}

#[test]
fn notify_test_sends_a_sample_to_each_channel_and_prints_each_result() {
    let mut env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    let u = sink.url();
    env.write_config(&format!(
        "[[notify.gotify]]\nname = \"phone\"\nurl = \"{u}\"\ntoken = \"{GOTIFY_TOKEN}\"\n\
         [[notify.gotify]]\nname = \"broken\"\nurl = \"{u}\"\ntoken = \"wrong-token\"\n\
         [[notify.ping]]\nname = \"hc\"\nurl = \"{u}/ping/{PING_UUID}\"\n"
    ));
    let r = env.run(&["notify", "test"]);
    r.expect(1); // one channel failed
    let out = r.stdout();
    assert!(out.contains("✓ gotify phone: sent (1 attempt)"), "{out}");
    assert!(
        out.contains("✗ gotify broken: failed after 1 attempt: HTTP 401"),
        "{out}"
    );
    assert!(out.contains("✓ ping hc success: sent (1 attempt)"), "{out}");
    assert!(!out.contains(PING_UUID) && !out.contains(GOTIFY_TOKEN));
    let g = sink.on_path("/message");
    assert_eq!(g[0]["json"]["title"], "pbs1: backup ok (test)");
    assert!(
        g[0]["json"]["message"]
            .as_str()
            .unwrap()
            .contains("test message")
    );
    assert!(env.archives().is_empty(), "notify test runs no backup");

    let before = sink.requests().len();
    let r = env.run(&["notify", "test", "--channel", "phone", "--json"]);
    r.expect(0);
    let j = r.json();
    assert_eq!(j["channels"].as_array().unwrap().len(), 1);
    assert_eq!(j["channels"][0]["channel"], "phone");
    assert_eq!(sink.requests().len(), before + 1);

    let r = env.run(&["notify", "test", "--channel", "nope"]);
    r.expect(2);
    assert!(r.stderr().contains("phone, broken, hc"), "{}", r.stderr());
    env.write_config("");
    env.run(&["notify", "test"]).expect(2);
}

#[test]
fn a_dry_run_notifies_nobody_and_writes_no_metrics() {
    let mut env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    env.write_config(&with_prom(&env, &all_channels(&sink)));
    env.run(&["backup", "--dry-run"]).expect(0);
    assert!(sink.requests().is_empty());
    assert!(!prom(&env).exists());
}

#[test]
fn config_show_redacts_notification_secrets() {
    let mut env = Env::new("");
    let sink_url = "http://127.0.0.1:9";
    env.write_config(&format!(
        "[[notify.webhook]]\nurl = \"{sink_url}/hook/{PING_UUID}\"\nheaders = {{ Authorization = \"Bearer hdr-secret-value\" }}\nhmac_secret = \"{HMAC_KEY}\"\n\
         [[notify.telegram]]\nbot_token = \"{TG_TOKEN}\"\nchat_id = \"@ops\"\n\
         [[notify.email]]\nto = [\"a@b.example\"]\nhost = \"mail.example\"\nusername = \"u\"\npassword = \"{SMTP_PASSWORD}\"\n"
    ));
    let r = env.run(&["config", "show"]);
    r.expect(0);
    let out = r.stdout();
    for s in [
        PING_UUID,
        "hdr-secret-value",
        HMAC_KEY,
        TG_TOKEN,
        SMTP_PASSWORD,
    ] {
        assert!(!out.contains(s), "{s} in\n{out}");
    }
    assert!(
        out.contains("[[notify.telegram]]") && out.contains("chat_id = \"@ops\""),
        "{out}"
    );
    assert!(
        out.contains("port = 587") && out.contains("tls = \"starttls\""),
        "{out}"
    );
}
