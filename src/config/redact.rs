//! `config show`: the effective configuration as TOML, secret values replaced.

use super::Config;

/// Replacement text for secret values in [`render_redacted`].
pub(super) const REDACTED: &str = "<redacted>";

/// Whether the value of `key` inside the section at `section` (path segments) is secret.
fn is_secret_key(section: &[String], key: &str) -> bool {
    const NEEDLES: &[&str] = &[
        "password",
        "passphrase",
        "token",
        "secret",
        "key_file",
        "keyfile",
        "webhook_url",
        "api_key",
        "credential",
    ];
    let key = key.to_ascii_lowercase();
    let in_notify = section.first().is_some_and(|s| s == "notify");
    NEEDLES.iter().any(|n| key.contains(n))
        || (key == "url" && in_notify)
        // Webhook header values carry credentials (`Authorization = "Bearer ..."`).
        || (in_notify && section.last().is_some_and(|s| s == "headers"))
}

/// Replaces the values of secret keys anywhere in `value` by `"<redacted>"`.
fn redact(value: &mut toml::Value, section: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, v) in table.iter_mut() {
                if is_secret_key(section, key) {
                    *v = toml::Value::String(REDACTED.to_owned());
                } else {
                    section.push(key.clone());
                    redact(v, section);
                    section.pop();
                }
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                redact(item, section);
            }
        }
        _ => {}
    }
}

/// The effective configuration as TOML, every key included, secret values replaced by
/// `"<redacted>"`. Parsing the output yields the same [`Config`] (as long as nothing was
/// redacted).
pub fn render_redacted(config: &Config) -> String {
    let mut value = match toml::Value::try_from(config) {
        Ok(v) => v,
        Err(e) => return format!("# cannot render configuration: {e}\n"),
    };
    redact(&mut value, &mut Vec::new());
    toml::to_string(&value).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_of_synthetic_secrets() {
        let mut value: toml::Value = toml::from_str(
            r#"
            backup_dir = "/b"
            url = "https://top-level.example"
            [encryption]
            passphrase = "hunter2"
            key_file = "/etc/proxkeep/key"
            [[remote]]
            name = "pbs1"
            api_token_secret = "abc"
            Password = "pw"
            [[notify.gotify]]
            url = "https://gotify.example/?token=x"
            app_token = "t"
            priority = 5
            [[notify.webhook]]
            webhook_url = "https://hooks.example/secret"
            [smtp]
            secrets = { a = 1, b = 2 }
            "#,
        )
        .unwrap();
        redact(&mut value, &mut Vec::new());
        let get = |path: &[&str]| -> toml::Value {
            let mut v = &value;
            for p in path {
                v = match v {
                    toml::Value::Array(items) => &items[p.parse::<usize>().unwrap()],
                    other => &other[*p],
                };
            }
            v.clone()
        };
        let redacted = toml::Value::String(REDACTED.into());
        for path in [
            &["encryption", "passphrase"][..],
            &["encryption", "key_file"],
            &["remote", "0", "api_token_secret"],
            &["remote", "0", "Password"],
            &["notify", "gotify", "0", "url"],
            &["notify", "gotify", "0", "app_token"],
            &["notify", "webhook", "0", "webhook_url"],
            &["smtp", "secrets"],
        ] {
            assert_eq!(get(path), redacted, "{path:?}");
        }
        assert_eq!(get(&["backup_dir"]), toml::Value::String("/b".into()));
        assert_eq!(
            get(&["url"]),
            toml::Value::String("https://top-level.example".into())
        );
        assert_eq!(
            get(&["remote", "0", "name"]),
            toml::Value::String("pbs1".into())
        );
        assert_eq!(
            get(&["notify", "gotify", "0", "priority"]),
            toml::Value::Integer(5)
        );
    }
}
