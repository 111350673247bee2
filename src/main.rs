//! The `proxkeep` binary: parse arguments, hand them to the CLI layer, map its outcome to the documented
//! exit code (README), and say an error once: on stderr, and as the JSON document with `--json`.

use clap::Parser;
use proxkeep::exit;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

mod cli;
use cli::{Exit, args::Cli, emit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = proxkeep::app::exit_if(e.use_stderr(), exit::USAGE);
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    raise_fd_limit();
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    // One flag for the whole process life: leaked so every layer can hold a plain &'static reference.
    let cancel: &'static AtomicBool = Box::leak(Box::new(flag));
    let code = match cli::run(&cli, cancel) {
        Ok(code) => code,
        // A reader that went away (`| head`) ends the command quietly, as it ends `cat`.
        Err(Exit(_, e, _)) if emit::is_closed_pipe(&e) => 128 + 13,
        Err(Exit(code, e, extra)) => {
            // A wrong key or damaged ciphertext is damage (6), a missing key a usage error (2), whichever
            // layer the error came through.
            let code = proxkeep::crypt::find(e.chain()).map_or(code, |c| c.exit_code());
            let message = error_text(&e);
            // One line, whatever a name in it holds (the JSON document keeps the exact text).
            eprintln!("error: {}", proxkeep::output::esc_line(&message));
            if cli.json && !emit::document_written() {
                let _ = emit::Emit {
                    json: true,
                    ..Default::default()
                }
                .json(&error_document(code, message, extra));
            }
            code
        }
    };
    ExitCode::from(code as u8)
}

/// The soft limit of open files up to the hard one (at most 65,536): restore keeps a share of it for
/// directory handles (`dirwalk::Walker`), and within 1024 it cuts more batches short. It works
/// within any limit: this only makes big restores faster where the hard limit allows it.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let want = limit.maximum.unwrap_or(u64::MAX).min(1 << 16);
    if limit.current.is_some_and(|soft| soft < want) {
        limit.current = Some(want);
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

/// `{"error": {"code", "kind", "message"}}`, plus the fields a command adds (a failed backup's checks).
fn error_document(
    code: i32,
    message: String,
    extra: Option<serde_json::Value>,
) -> serde_json::Value {
    let kind = match code {
        exit::USAGE => "usage",
        exit::PREFLIGHT => "preflight",
        exit::LOCKED => "locked",
        exit::DAMAGED => "damaged",
        exit::INTERRUPTED => "interrupted",
        _ => "failed",
    };
    let mut doc = match extra {
        Some(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    doc.insert(
        "error".into(),
        serde_json::json!({"code": code, "kind": kind, "message": message}),
    );
    serde_json::Value::Object(doc)
}

/// The error and its causes, each said once: many of our errors already quote their source in their own
/// text, which `{:#}` would repeat.
fn error_text(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if msg.is_empty() {
            msg = s;
        } else if !s.is_empty() && !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
    }
    msg
}
