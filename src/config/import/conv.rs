//! The converters of [`super::map`]'s rows: a value as the reference writes it to proxkeep's, or why not.

use super::{Carried, Skip, Val};
use crate::units;
use base64::Engine;
use toml::Value;

fn boolean(v: &Val) -> Result<bool, Skip> {
    super::boolean(v.value)
        .ok_or_else(|| Skip::NotCarried(format!("`{}` is not true or false", v.value)))
}

pub fn backup_enabled(v: &Val) -> Result<Carried, Skip> {
    match boolean(v)? {
        true => Err(Skip::NotNeeded(
            "proxkeep runs when proxkeep.timer (or you) start it".into(),
        )),
        false => Err(Skip::NotCarried(
            "proxkeep has no off switch: leave proxkeep.timer disabled".into(),
        )),
    }
}

/// A block's switch (`SECONDARY_ENABLED`): `true` makes the block, whose other keys come from other rows.
pub fn enabled(v: &Val) -> Result<Carried, Skip> {
    match boolean(v)? {
        true => Ok(Carried::none()),
        false => Err(Skip::NotNeeded(
            "false: the reference does not use the feature".into(),
        )),
    }
}

/// A channel's switch: the reference reports every run, so the channel hears of every outcome.
pub fn channel(v: &Val) -> Result<Carried, Skip> {
    enabled(v)?;
    let on = Value::Array(["failure", "warning", "success"].map(Value::from).to_vec());
    Ok(Carried::table([("on", on)]).note("on every outcome, as the reference"))
}

fn non_empty<'a>(v: &'a Val) -> Result<&'a str, Skip> {
    match v.value.trim() {
        "" => Err(Skip::NotNeeded("empty: proxkeep's default applies".into())),
        s => Ok(s),
    }
}

pub fn text(v: &Val) -> Result<Carried, Skip> {
    Ok(Value::from(non_empty(v)?).into())
}

fn absolute(s: &str) -> Result<&str, Skip> {
    let p = std::path::Path::new(s);
    match p.is_absolute() && !p.components().any(|c| c == std::path::Component::ParentDir) {
        true => Ok(s),
        false => Err(Skip::NotCarried(format!(
            "`{s}` is not an absolute path: set it by hand"
        ))),
    }
}

pub fn path(v: &Val) -> Result<Carried, Skip> {
    Ok(Value::from(absolute(non_empty(v)?)?).into())
}

pub fn log_path(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim() {
        "" => Err(Skip::NotCarried("empty means stdout only in the reference; proxkeep always writes a run log (log_dir, default /var/log/proxkeep)".into())),
        _ => path(v),
    }
}

pub fn root_prefix(v: &Val) -> Result<Carried, Skip> {
    non_empty(v)?;
    Err(Skip::NotCarried(
        "give the host root per run: `proxkeep --root DIR backup`".into(),
    ))
}

fn number(v: &Val) -> Result<i64, Skip> {
    v.value
        .trim()
        .parse()
        .map_err(|_| Skip::NotCarried(format!("`{}` is not a number", v.value)))
}

pub fn count(v: &Val) -> Result<Carried, Skip> {
    non_empty(v)?;
    Ok(Value::Integer(number(v)?.max(0)).into())
}

pub fn gib(v: &Val) -> Result<Carried, Skip> {
    non_empty(v)?;
    Ok(Value::from(format!("{}GiB", number(v)?.max(0))).into())
}

pub fn seconds(v: &Val) -> Result<Carried, Skip> {
    let d = units::parse_duration(non_empty(v)?).map_err(Skip::NotCarried)?;
    if d.is_zero() {
        return Err(Skip::NotCarried(
            "0: proxkeep's timeouts are never off".into(),
        ));
    }
    Ok(Value::from(units::duration_to_string(d)).into())
}

fn list(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
}

fn strings<'a>(items: impl Iterator<Item = &'a str>) -> Result<Carried, Skip> {
    let v: Vec<Value> = items.map(Value::from).collect();
    match v.is_empty() {
        true => Err(Skip::NotNeeded("empty: nothing to carry".into())),
        false => Ok(Value::Array(v).into()),
    }
}

pub fn globs(v: &Val) -> Result<Carried, Skip> {
    // proxkeep matches absolute host paths: a relative pattern matches anywhere below /.
    let all: Vec<String> = list(v.value)
        .map(|g| match g.starts_with(['/', '*', '?', '[', '{']) {
            true => g.to_string(),
            false => format!("**/{g}"),
        })
        .collect();
    if let Some(bad) = all.iter().find(|g| globset::Glob::new(g).is_err()) {
        return Err(Skip::NotCarried(format!(
            "`{bad}` is not a valid glob: set collect.exclude by hand"
        )));
    }
    strings(all.iter().map(String::as_str))
}

pub fn paths(v: &Val) -> Result<Carried, Skip> {
    let all: Vec<&str> = list(v.value).collect();
    all.iter().try_for_each(|p| absolute(p).map(drop))?;
    strings(all.into_iter())
}

pub fn words(v: &Val) -> Result<Carried, Skip> {
    strings(v.value.split_whitespace())
}

fn flag(name: &str, v: &Val) -> Result<Carried, Skip> {
    strings([name, non_empty(v)?].into_iter())
}

pub fn contimeout(v: &Val) -> Result<Carried, Skip> {
    let Ok(Carried { value: Some(d), .. }) = seconds(v) else {
        return Err(Skip::NotNeeded("empty: rclone's default applies".into()));
    };
    flag(
        "--contimeout",
        &Val {
            value: d.as_str().unwrap_or_default(),
            ..*v
        },
    )
}

pub fn bwlimit(v: &Val) -> Result<Carried, Skip> {
    flag("--bwlimit", v)
}

pub fn transfers(v: &Val) -> Result<Carried, Skip> {
    number(v)?;
    flag("--transfers", v)
}

/// `remote:path` from CLOUD_REMOTE (a name, or already `remote:path`) and CLOUD_REMOTE_PATH.
pub fn remote_target(v: &Val) -> Result<Carried, Skip> {
    let remote = v.get("CLOUD_REMOTE").trim();
    let sub = v.get("CLOUD_REMOTE_PATH").trim().trim_matches('/');
    if remote.is_empty() {
        return Err(Skip::NotCarried(
            "CLOUD_REMOTE is empty (the reference disables the cloud then)".into(),
        ));
    }
    let target = match (remote.split_once(':'), sub) {
        (_, "") if remote.contains(':') => remote.to_string(),
        (Some((_, "")), _) => format!("{remote}{sub}"),
        (Some(_), _) => format!("{}/{sub}", remote.trim_end_matches('/')),
        (None, _) => format!("{remote}:{sub}"),
    };
    Ok(Value::from(target).into())
}

fn is_gfs(v: &Val) -> bool {
    v.get("RETENTION_POLICY").trim().eq_ignore_ascii_case("gfs")
}

const KEEPS: [&str; 6] = [
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
];

/// The rules the policy does not use are written as 0, so proxkeep's own defaults do not add to them.
pub fn policy(v: &Val) -> Result<Carried, Skip> {
    let (used, note): (&[&str], _) = match is_gfs(v) {
        true => (
            &["keep_last", "keep_weekly", "keep_monthly", "keep_yearly"],
            "gfs: the RETENTION_* tiers",
        ),
        false => (&["keep_last"], "simple: the newest MAX_*_BACKUPS"),
    };
    let zeros = KEEPS
        .iter()
        .filter(|k| !used.contains(k))
        .map(|k| (*k, Value::Integer(0)));
    Ok(Carried::table(zeros).note(note))
}

pub fn local_count(v: &Val) -> Result<Carried, Skip> {
    match is_gfs(v) {
        true => Err(Skip::NotNeeded(
            "RETENTION_POLICY=gfs: the RETENTION_* tiers apply".into(),
        )),
        false => count(v).map(|c| c.note("0 or less keeps every archive, as in the reference")),
    }
}

pub fn tier_count(v: &Val) -> Result<Carried, Skip> {
    match is_gfs(v) {
        true => Err(Skip::NotNeeded(
            "RETENTION_POLICY=gfs: [retention] applies to every tier".into(),
        )),
        false => count(v),
    }
}

pub fn gfs(v: &Val) -> Result<Carried, Skip> {
    match is_gfs(v) {
        false => Err(Skip::NotNeeded(
            "RETENTION_POLICY is not gfs: the reference does not use it".into(),
        )),
        true => count(v),
    }
}

pub fn gfs_daily(v: &Val) -> Result<Carried, Skip> {
    let n = gfs(v)?.value.and_then(|n| n.as_integer()).unwrap_or(0);
    Ok(Carried::from(Value::Integer(n.max(1)))
        .note("the reference's daily tier keeps the newest N, at least 1"))
}

pub fn gfs_yearly(v: &Val) -> Result<Carried, Skip> {
    match gfs(v)?.value.and_then(|n| n.as_integer()) {
        Some(0) => Ok(Carried::from(Value::Integer(1000))
            .note("0 means unlimited in the reference: written as 1000")),
        n => Ok(Value::Integer(n.unwrap_or(0)).into()),
    }
}

fn algorithm_of(v: &Val) -> Result<&'static str, String> {
    match v
        .get("COMPRESSION_TYPE")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "zst" | "zstd" => Ok("zstd"),
        "xz" => Ok("xz"),
        "gz" | "gzip" | "pigz" => Ok("gzip"),
        "none" => Ok("none"),
        "" => Err("empty: proxkeep's default (zstd) applies".into()),
        other => Err(format!(
            "proxkeep writes zstd, xz, gzip or none, not {other}: its default zstd applies"
        )),
    }
}

pub fn algorithm(v: &Val) -> Result<Carried, Skip> {
    algorithm_of(v)
        .map(|a| Value::from(a).into())
        .map_err(Skip::NotCarried)
}

pub fn level(v: &Val) -> Result<Carried, Skip> {
    let algorithm = algorithm_of(v).unwrap_or("zstd");
    let range = algorithm
        .parse::<crate::config::Compression>()
        .map_err(Skip::NotCarried)?
        .level_range();
    let n = number(v)?;
    match () {
        _ if algorithm == "none" => Err(Skip::NotNeeded("no compression".into())),
        _ if n > i64::from(*range.end()) && algorithm == "zstd" => {
            Ok(Carried::from(Value::Integer((*range.end()).into()))
                .note("proxkeep's zstd levels end at 19"))
        }
        _ if !range.contains(&(n as i32)) => Err(Skip::NotCarried(format!(
            "{n} is not a {algorithm} level ({}-{}); the reference would use 6",
            range.start(),
            range.end()
        ))),
        _ => Ok(Value::Integer(n).into()),
    }
}

pub fn compression_mode(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim() {
        "" | "standard" => Err(Skip::NotNeeded(
            "standard: compression.level alone decides".into(),
        )),
        _ => Err(Skip::NotCarried(
            "proxkeep has no modes (nor xz --extreme): compression.level alone decides".into(),
        )),
    }
}

pub fn recipients(v: &Val) -> Result<Carried, Skip> {
    // One per line or comma; `age1…` keys may also be separated by spaces (ssh keys contain spaces).
    let all: Vec<&str> = list(v.value)
        .flat_map(|r| match r.starts_with("age1") {
            true => r.split_whitespace().collect(),
            false => vec![r],
        })
        .collect();
    strings(all.into_iter())
}

pub fn telegram_type(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim() {
        "centralized" => Err(Skip::NotCarried("the reference's relay bot is a third-party service: create your own bot with @BotFather and set notify.telegram bot_token and chat_id".into())),
        _ => Ok(Carried::none().note("your own bot")),
    }
}

pub fn chat_id(v: &Val) -> Result<Carried, Skip> {
    let id = non_empty(v)?;
    Ok(id
        .parse::<i64>()
        .map_or_else(|_| Value::from(id), Value::Integer)
        .into())
}

pub fn delivery(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim() {
        "sendmail" => Ok(Value::from("sendmail").into()),
        "pmf" => Ok(Carried::from(Value::from("sendmail")).note("through the host's sendmail, not proxmox-mail-forward")),
        _ => Err(Skip::NotCarried("the reference's relay is a third-party service: the block sends through sendmail (the reference's fallback); for SMTP set transport = \"smtp\" and host".into())),
    }
}

pub fn mail_to(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim() {
        "" => Err(Skip::NotCarried("empty means root@pam's address in the reference: proxkeep does not look it up; set notify.email.to".into())),
        s => strings(s.split([',', ' ', ';', '\n']).filter(|s| !s.is_empty())),
    }
}

pub fn priority(v: &Val) -> Result<Carried, Skip> {
    let (status, default) = match v.key.rsplit('_').next() {
        Some("SUCCESS") => ("success", 2),
        Some("WARNING") => ("warning", 5),
        _ => ("failure", 8),
    };
    match number(v) {
        Ok(n) if n == default => Err(Skip::NotNeeded(format!(
            "proxkeep sends {status} with priority {default} too"
        ))),
        _ => Err(Skip::NotCarried(format!(
            "proxkeep sends {status} with priority {default} (fixed)"
        ))),
    }
}

pub fn endpoints(v: &Val) -> Result<Carried, Skip> {
    let names: Vec<&str> = list(v.value).flat_map(str::split_whitespace).collect();
    match names.is_empty() {
        true => Err(Skip::NotNeeded("no endpoint".into())),
        false => Ok(Carried::none().note(&format!(
            "one block per endpoint: {}",
            names.join(", ").to_lowercase()
        ))),
    }
}

pub fn webhook_format(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim().to_ascii_lowercase().as_str() {
        "" => Err(Skip::NotNeeded(
            "empty: the generic format (proxkeep's json)".into(),
        )),
        "generic" => Ok(Carried::from(Value::from("json"))
            .note("proxkeep's own JSON document (docs/monitoring.md)")),
        f @ ("discord" | "slack") => Ok(Value::from(f).into()),
        f => Err(Skip::NotCarried(format!(
            "proxkeep formats json, discord and slack, not {f}: the endpoint gets json"
        ))),
    }
}

pub fn method(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim().to_ascii_uppercase().as_str() {
        "" => Err(Skip::NotNeeded("empty: POST".into())),
        m @ ("POST" | "PUT") => Ok(Value::from(m).into()),
        m => Err(Skip::NotCarried(format!(
            "proxkeep sends POST or PUT, not {m}: the endpoint gets POST"
        ))),
    }
}

/// `Name: value` pairs separated by commas or new lines.
pub fn headers(v: &Val) -> Result<Carried, Skip> {
    let mut out = Vec::new();
    for pair in list(v.value) {
        let Some((name, value)) = pair.split_once([':', '=']) else {
            return Err(Skip::NotCarried(
                "a header is not `Name: value`: set notify.webhook.headers by hand".into(),
            ));
        };
        out.push((name.trim(), Value::from(value.trim())));
    }
    Ok(Carried::table(out))
}

pub fn auth_type(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim().to_ascii_lowercase().as_str() {
        "" | "none" => Err(Skip::NotNeeded("no authentication".into())),
        "bearer" | "basic" => Ok(Carried::none().note("an Authorization header")),
        "hmac" => Ok(Carried::none().note("proxkeep signs in X-Proxkeep-Signature: sha256=<hex>, not X-Signature: adapt the receiver")),
        t => Err(Skip::NotCarried(format!("unknown auth type {t}: set notify.webhook.headers by hand"))),
    }
}

/// The Authorization header from AUTH_TOKEN (bearer) or AUTH_USER and AUTH_PASS (basic).
pub fn auth_header(v: &Val) -> Result<Carried, Skip> {
    let header = match v.sibling("AUTH_TYPE").trim().to_ascii_lowercase().as_str() {
        "bearer" if v.key.ends_with("_AUTH_TOKEN") => format!("Bearer {}", v.value.trim()),
        "basic" if !v.key.ends_with("_AUTH_TOKEN") => {
            let pair = format!("{}:{}", v.sibling("AUTH_USER"), v.sibling("AUTH_PASS"));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        }
        _ => {
            return Err(Skip::NotNeeded(
                "the endpoint's AUTH_TYPE does not use it".into(),
            ));
        }
    };
    Ok(Carried::table([("Authorization", Value::from(header))]))
}

pub fn hmac(v: &Val) -> Result<Carried, Skip> {
    match v.sibling("AUTH_TYPE").trim().eq_ignore_ascii_case("hmac") {
        true => text(v),
        false => Err(Skip::NotNeeded(
            "the endpoint's AUTH_TYPE is not hmac".into(),
        )),
    }
}

pub fn textfile(v: &Val) -> Result<Carried, Skip> {
    let dir = match v.value.trim().trim_end_matches('/') {
        "" => "/var/lib/prometheus/node-exporter",
        d => absolute(d)?,
    };
    Ok(Carried::from(Value::from(format!("{dir}/proxkeep.prom")))
        .note("proxkeep's metric names differ: docs/monitoring.md"))
}

pub fn healthcheck_mode(v: &Val) -> Result<Carried, Skip> {
    match v.value.trim() {
        "self" => Ok(Carried::none()),
        _ => Err(Skip::NotCarried("the centralized mode is the reference's own service: create a check (Healthchecks.io or self-hosted) and set notify.ping.url".into())),
    }
}

/// The backup check's URL: HEALTHCHECK_BACKUP_URL, else HEALTHCHECK_PING_ENDPOINT/HEALTHCHECK_BACKUP_ID.
pub fn ping_url(v: &Val) -> Result<Carried, Skip> {
    if !v
        .get("HEALTHCHECK_MODE")
        .trim()
        .eq_ignore_ascii_case("self")
    {
        return Err(Skip::NotNeeded("HEALTHCHECK_MODE is not self".into()));
    }
    let url = v.get("HEALTHCHECK_BACKUP_URL").trim();
    let id = v.get("HEALTHCHECK_BACKUP_ID").trim();
    match (url, id) {
        ("", "") => Err(Skip::NotNeeded("no backup check URL or ID".into())),
        _ if v.key == "HEALTHCHECK_BACKUP_URL" && url.is_empty() => {
            Err(Skip::NotNeeded("empty".into()))
        }
        (u, _) if !u.is_empty() && v.key != "HEALTHCHECK_BACKUP_URL" => Err(Skip::NotNeeded(
            "HEALTHCHECK_BACKUP_URL gives the URL".into(),
        )),
        ("", id) => {
            let endpoint = v
                .get("HEALTHCHECK_PING_ENDPOINT")
                .trim()
                .trim_end_matches('/');
            let endpoint = if endpoint.is_empty() {
                "https://hc-ping.com"
            } else {
                endpoint
            };
            Ok(Value::from(format!("{endpoint}/{id}")).into())
        }
        (u, _) => Ok(Value::from(u).into()),
    }
}

/// A collector switch (`BACKUP_*`): true is the default of both tools.
pub fn switch(
    v: &Val,
    skip: &[&str],
    exclude: &[&str],
) -> Result<Vec<(&'static str, Carried)>, Skip> {
    if boolean(v)? {
        return Err(Skip::NotNeeded(
            "true: proxkeep collects it (`proxkeep catalog`)".into(),
        ));
    }
    let mut out = Vec::new();
    if !skip.is_empty() {
        out.push(("collect.skip_categories", strings(skip.iter().copied())?));
    }
    if !exclude.is_empty() {
        out.push(("collect.exclude", strings(exclude.iter().copied())?));
    }
    Ok(out)
}

/// A source-path override: the standard path is collected anyway; another one is added.
pub fn std_path(v: &Val, standard: &str) -> Result<Carried, Skip> {
    match v.value.trim().trim_end_matches('/') {
        "" => Err(Skip::NotNeeded("empty: the standard path".into())),
        p if p == standard => Err(Skip::NotNeeded(format!(
            "{standard} is in proxkeep's catalog"
        ))),
        p => Ok(Carried::from(Value::Array(vec![Value::from(absolute(p)?)]))
            .note(&format!("the catalog still collects {standard}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_targets() {
        let cases = [
            (
                "GoogleDrive",
                "/proxsave/backup",
                "GoogleDrive:proxsave/backup",
            ),
            ("b2:bucket", "/pk/", "b2:bucket/pk"),
            ("b2:", "x", "b2:x"),
            ("b2:bucket/base", "", "b2:bucket/base"),
            ("nas", "", "nas:"),
        ];
        for (remote, path, want) in cases {
            let all = super::super::In::from_pairs(&[
                ("CLOUD_REMOTE", remote),
                ("CLOUD_REMOTE_PATH", path),
            ]);
            let v = Val {
                key: "CLOUD_REMOTE",
                value: remote,
                name: "",
                all: &all,
            };
            let got = remote_target(&v).ok().and_then(|c| c.value).unwrap();
            assert_eq!(got.as_str(), Some(want), "{remote} {path}");
        }
    }
}
