//! `config import`: the reference tool's `backup.env` (`env`) carried into proxkeep's keys by the table of
//! `map`, with one [`Line`] per key of the input saying what became of it. Pure: the caller reads the file,
//! renders the TOML (template) and writes it.

mod conv;
pub mod env;
mod map;

use map::{BLOCKS, Block, How, Row};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use toml::{Table, Value};

pub use env::EnvError;

/// Where `${BASE_DIR}` points when the file does not set it: the reference's install dir.
pub const REFERENCE_BASE_DIR: &str = "/opt/proxsave";

/// What became of one key of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Carried,
    NotNeeded,
    NotCarried,
}

/// One key of the input: its line, what became of it, the proxkeep key(s) it went to, why (or a note on how).
/// Values are never here: secrets must not be printed.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub key: String,
    pub line: usize,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    pub secret: bool,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = self.why.as_deref().unwrap_or("");
        match self.outcome {
            Outcome::Carried => {
                write!(
                    f,
                    "carried {} -> {}",
                    self.key,
                    self.target.as_deref().unwrap_or("")
                )?;
                let notes: Vec<&str> = [why, if self.secret { "secret, not shown" } else { "" }]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect();
                match notes.is_empty() {
                    true => Ok(()),
                    false => write!(f, " ({})", notes.join("; ")),
                }
            }
            Outcome::NotNeeded => write!(f, "not needed {}: {why}", self.key),
            Outcome::NotCarried => write!(f, "not carried {}: {why}", self.key),
        }
    }
}

/// The proxkeep settings carried (a TOML table shaped like proxkeep.toml) and the per-key report.
#[derive(Debug)]
pub struct Import {
    pub config: Table,
    pub lines: Vec<Line>,
}

/// A converter's result: the value for the row's target (`None`: the row only enables its block), and a note.
pub struct Carried {
    value: Option<Value>,
    note: Option<String>,
}

impl Carried {
    fn none() -> Carried {
        Carried {
            value: None,
            note: None,
        }
    }
    fn table<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Carried {
        let t: Table = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Value::Table(t).into()
    }
    fn note(self, note: &str) -> Carried {
        Carried {
            note: Some(note.to_string()),
            ..self
        }
    }
}

impl From<Value> for Carried {
    fn from(v: Value) -> Carried {
        Carried {
            value: Some(v),
            note: None,
        }
    }
}

/// Why a key is not carried: proxkeep does not need it, or cannot carry it (the text says what to do).
pub enum Skip {
    NotNeeded(String),
    NotCarried(String),
}

/// Every value of the input, by key.
pub struct In(BTreeMap<String, String>);

impl In {
    #[cfg(test)]
    fn from_pairs(pairs: &[(&str, &str)]) -> In {
        In(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

/// What a converter sees: the key, its value, the NAME its `*` stands for, and every other value.
#[derive(Clone, Copy)]
pub struct Val<'a> {
    key: &'a str,
    value: &'a str,
    name: &'a str,
    all: &'a In,
}

impl Val<'_> {
    fn get(&self, key: &str) -> &str {
        self.all.0.get(key).map_or("", String::as_str)
    }
    /// The value of this endpoint's `WEBHOOK_<NAME>_<suffix>`.
    fn sibling(&self, suffix: &str) -> &str {
        self.get(&format!("WEBHOOK_{}_{suffix}", self.name))
    }
}

/// The reference's booleans (Go's strconv.ParseBool, plus yes/no and on/off).
fn boolean(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "y" | "on" => Some(true),
        "0" | "f" | "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// A write into the config: the block (index into [`BLOCKS`]) and its instance ("" the one, a NAME, "*" every
/// one), or none; the key path inside; the value.
struct Write {
    block: Option<(usize, String)>,
    path: String,
    value: Value,
}

/// Parses `text` (a `backup.env`) and carries it; `lookup` gives `${VAR}`s the file does not set.
pub fn import(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Import, EnvError> {
    let entries = env::parse(text, &|k| {
        lookup(k).or_else(|| (k == "BASE_DIR").then(|| REFERENCE_BASE_DIR.to_string()))
    })?;
    let all = In(entries
        .iter()
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect());
    let mut lines = Vec::new();
    let mut writes: Vec<(usize, Write)> = Vec::new();
    for e in &entries {
        let (line, w) = evaluate(&e.key, &e.value, e.line, &all);
        writes.extend(w.into_iter().map(|w| (lines.len(), w)));
        lines.push(line);
    }
    let config = build(writes, &mut lines);
    Ok(Import { config, lines })
}

/// One key: its report line and what it writes.
fn evaluate(key: &str, value: &str, at: usize, all: &In) -> (Line, Vec<Write>) {
    let mut line = Line {
        key: key.to_string(),
        line: at,
        outcome: Outcome::NotCarried,
        target: None,
        why: None,
        secret: false,
    };
    let Some((row, name)) = map::row_of(key) else {
        line.why = Some(
            "not a key of the reference's template (a legacy alias? rename it to the current key and import \
             again)"
                .into(),
        );
        return (line, Vec::new());
    };
    line.secret = row.secret;
    let v = Val {
        key,
        value,
        name,
        all,
    };
    match carry(row, &v) {
        Ok(done) => {
            line.outcome = Outcome::Carried;
            let targets: Vec<&str> = done.iter().map(|(t, _)| *t).collect();
            line.target = Some(targets.join(" + "));
            line.why = done.iter().find_map(|(_, c)| c.note.clone());
            let writes = done
                .into_iter()
                .map(|(target, c)| write_of(target, name, c.value))
                .collect();
            (line, writes)
        }
        Err(skip) => {
            (line.outcome, line.why) = match skip {
                Skip::NotNeeded(why) => (Outcome::NotNeeded, Some(why)),
                Skip::NotCarried(why) => (Outcome::NotCarried, Some(why)),
            };
            (line, Vec::new())
        }
    }
}

/// The row's outcome: its targets and values, or why not.
fn carry(row: &Row, v: &Val) -> Result<Vec<(&'static str, Carried)>, Skip> {
    if !row.gate.is_empty() && boolean(v.get(row.gate)) != Some(true) {
        return Err(Skip::NotNeeded(format!(
            "{} is not true, so the reference does not use it",
            row.gate
        )));
    }
    if !row.names.is_empty() {
        let names = v.get(row.names).replace(',', " ");
        if !names
            .split_whitespace()
            .any(|n| n.eq_ignore_ascii_case(v.name))
        {
            return Err(Skip::NotNeeded(format!(
                "{} is not in {}",
                v.name, row.names
            )));
        }
    }
    match &row.how {
        How::Conv(conv) => conv(v).map(|c| vec![(row.target, c)]),
        How::Off(skip, exclude) => conv::switch(v, skip, exclude),
        How::Std(standard) => conv::std_path(v, standard).map(|c| vec![(row.target, c)]),
        How::IfTrue(why) => match boolean(v.value) {
            Some(true) => Err(Skip::NotCarried(why.to_string())),
            _ => Err(Skip::NotNeeded("false: nothing to carry".into())),
        },
        How::NotNeeded(why) => Err(Skip::NotNeeded(why.to_string())),
        How::NotCarried(why) => Err(Skip::NotCarried(why.to_string())),
    }
}

/// The block `target` is in, and the key path inside it.
fn block_of(target: &str) -> Option<(usize, &str)> {
    BLOCKS.iter().enumerate().find_map(|(i, b)| {
        let rest = target.strip_prefix(b.path)?;
        match rest.strip_prefix('.') {
            Some(inner) => Some((i, inner)),
            None => rest.is_empty().then_some((i, "")),
        }
    })
}

fn write_of(target: &str, name: &str, value: Option<Value>) -> Write {
    let value = value.unwrap_or_else(|| Value::Table(Table::new()));
    match block_of(target) {
        Some((i, inner)) => {
            let instance = match (BLOCKS[i].per_name, name) {
                (true, "") => "*".to_string(),
                (true, n) => n.to_ascii_lowercase(),
                (false, _) => String::new(),
            };
            Write {
                block: Some((i, instance)),
                path: inner.to_string(),
                value,
            }
        }
        None => Write {
            block: None,
            path: target.to_string(),
            value,
        },
    }
}

/// `value` into `table` at the dotted `path`: arrays are extended (without repeats), tables merged, anything
/// else replaced.
fn put(table: &mut Table, path: &str, value: Value) {
    match path.split_once('.') {
        Some((head, rest)) => {
            let sub = table
                .entry(head)
                .or_insert_with(|| Value::Table(Table::new()));
            if let Value::Table(sub) = sub {
                put(sub, rest, value);
            }
        }
        None if path.is_empty() => merge(table, value),
        None => match table.get_mut(path) {
            Some(have) => merge_value(have, value),
            None => {
                table.insert(path.to_string(), value);
            }
        },
    }
}

/// A table's keys into `table` (anything else is dropped: only tables write at a table's own path).
fn merge(table: &mut Table, value: Value) {
    if let Value::Table(more) = value {
        for (k, v) in more {
            match table.get_mut(&k) {
                Some(have) => merge_value(have, v),
                None => {
                    table.insert(k, v);
                }
            }
        }
    }
}

fn merge_value(have: &mut Value, value: Value) {
    match (have, value) {
        (Value::Array(have), Value::Array(more)) => {
            for v in more {
                if !have.contains(&v) {
                    have.push(v);
                }
            }
        }
        (Value::Table(have), more @ Value::Table(_)) => merge(have, more),
        (have, value) => *have = value,
    }
}

/// The config from the writes; a block that misses a key it needs is left out, and the lines that went into it
/// say so.
fn build(writes: Vec<(usize, Write)>, lines: &mut [Line]) -> Table {
    let mut config = Table::new();
    let mut blocks: BTreeMap<(usize, String), Table> = BTreeMap::new();
    let mut every: BTreeMap<usize, Table> = BTreeMap::new();
    let mut into: Vec<(usize, usize, String)> = Vec::new();
    for (line, w) in writes {
        match w.block {
            None => put(&mut config, &w.path, w.value),
            Some((b, instance)) => {
                let table = match instance.as_str() {
                    "*" => every.entry(b).or_default(),
                    _ => blocks.entry((b, instance.clone())).or_default(),
                };
                put(table, &w.path, w.value);
                into.push((line, b, instance));
            }
        }
    }
    let mut kept: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    for ((b, instance), mut table) in blocks {
        let block = &BLOCKS[b];
        // The keys every instance gets, unless it sets its own.
        for (k, v) in every.get(&b).into_iter().flatten() {
            table.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if let Some(missing) = missing(block, &table) {
            let why = format!(
                "{} needs {missing}, which the input does not give: the block is left out (add it by hand)",
                header(block)
            );
            for (line, _, _) in into
                .iter()
                .filter(|(_, ib, ii)| *ib == b && *ii == instance)
            {
                left_out(&mut lines[*line], &why);
            }
            continue;
        }
        if block.per_name {
            table.insert("name".into(), Value::from(instance.as_str()));
        }
        kept.entry(b).or_default().push(Value::Table(table));
    }
    for (line, b, instance) in &into {
        if instance == "*" && !kept.contains_key(b) {
            let why = format!("no {} endpoint was carried", header(&BLOCKS[*b]));
            left_out(&mut lines[*line], &why);
        }
    }
    for (b, tables) in kept {
        let block = &BLOCKS[b];
        let value = match block.array {
            true => Value::Array(tables),
            false => tables
                .into_iter()
                .next()
                .unwrap_or(Value::Table(Table::new())),
        };
        put(&mut config, block.path, value);
    }
    config
}

fn header(b: &Block) -> String {
    match b.array {
        true => format!("[[{}]]", b.path),
        false => format!("[{}]", b.path),
    }
}

/// The first of `needs` the table lacks.
fn missing(b: &Block, table: &Table) -> Option<&'static str> {
    b.needs
        .iter()
        .find(|n| !n.split('|').any(|k| table.contains_key(k)))
        .copied()
}

fn left_out(line: &mut Line, why: &str) {
    if line.outcome == Outcome::Carried {
        line.outcome = Outcome::NotCarried;
        line.target = None;
        line.why = Some(why.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Import {
        import(text, &|_| None).unwrap()
    }

    fn report(i: &Import) -> Vec<String> {
        i.lines.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn carries_and_reports_every_key() {
        let i = run(
            "BACKUP_PATH=${BASE_DIR}/backup\nUSE_COLOR=true\nCOMPRESSION_TYPE=bz2\nNOT_A_KEY=1\n\
                     TELEGRAM_ENABLED=true\nBOT_TELEGRAM_TYPE=personal\nTELEGRAM_BOT_TOKEN=123:abc\n\
                     TELEGRAM_CHAT_ID=-100\nBACKUP_CRON_JOBS=false\nBACKUP_SSH_KEYS=true\n",
        );
        let r = report(&i);
        assert_eq!(r[0], "carried BACKUP_PATH -> backup_dir");
        assert!(r[1].starts_with("not needed USE_COLOR: "), "{r:?}");
        assert!(
            r[2].starts_with("not carried COMPRESSION_TYPE: proxkeep writes zstd"),
            "{r:?}"
        );
        assert!(r[3].starts_with("not carried NOT_A_KEY: "), "{r:?}");
        assert_eq!(
            r[6],
            "carried TELEGRAM_BOT_TOKEN -> notify.telegram.bot_token (secret, not shown)"
        );
        assert_eq!(r[8], "carried BACKUP_CRON_JOBS -> collect.skip_categories");
        assert!(
            r[9].starts_with("not needed BACKUP_SSH_KEYS: true"),
            "{r:?}"
        );
        assert_eq!(
            i.config["backup_dir"].as_str(),
            Some("/opt/proxsave/backup")
        );
        let tg = &i.config["notify"]["telegram"][0];
        assert_eq!(tg["bot_token"].as_str(), Some("123:abc"));
        assert_eq!(tg["chat_id"].as_integer(), Some(-100));
        assert_eq!(tg["on"].as_array().unwrap().len(), 3);
        assert_eq!(
            i.config["collect"]["skip_categories"][0].as_str(),
            Some("cron")
        );
        assert!(r.iter().all(|l| !l.contains("123:abc")));
    }

    #[test]
    fn incomplete_blocks_are_left_out() {
        let i = run(
            "TELEGRAM_ENABLED=true\nBOT_TELEGRAM_TYPE=centralized\nTELEGRAM_CHAT_ID=5\n\
                     WEBHOOK_ENABLED=true\nWEBHOOK_ENDPOINTS=ops\nWEBHOOK_TIMEOUT=20\n",
        );
        let r = report(&i);
        assert!(
            r[0].starts_with("not carried TELEGRAM_ENABLED: [[notify.telegram]] needs bot_token"),
            "{r:?}"
        );
        assert!(
            r[1].starts_with("not carried BOT_TELEGRAM_TYPE: the reference's relay bot"),
            "{r:?}"
        );
        assert!(
            r[5].starts_with("not carried WEBHOOK_TIMEOUT: no [[notify.webhook]] endpoint"),
            "{r:?}"
        );
        assert!(i.config.get("notify").is_none(), "{:?}", i.config);
    }

    #[test]
    fn webhooks_per_endpoint() {
        let i = run(
            "WEBHOOK_ENABLED=true\nWEBHOOK_ENDPOINTS=\"ops, chat\"\nWEBHOOK_FORMAT=discord\n\
                     WEBHOOK_TIMEOUT=20\nWEBHOOK_OPS_URL=https://ops.example/h\nWEBHOOK_OPS_AUTH_TYPE=basic\n\
                     WEBHOOK_OPS_AUTH_USER=u\nWEBHOOK_OPS_AUTH_PASS=p\nWEBHOOK_OPS_FORMAT=generic\n\
                     WEBHOOK_CHAT_URL=https://chat.example/h\nWEBHOOK_OTHER_URL=https://x.example\n",
        );
        let hooks = i.config["notify"]["webhook"].as_array().unwrap();
        assert_eq!(hooks.len(), 2);
        let (chat, ops) = (&hooks[0], &hooks[1]);
        assert_eq!(ops["name"].as_str(), Some("ops"));
        assert_eq!(ops["format"].as_str(), Some("json"));
        assert_eq!(ops["headers"]["Authorization"].as_str(), Some("Basic dTpw"));
        assert_eq!(chat["format"].as_str(), Some("discord"));
        assert_eq!(chat["timeout"].as_str(), Some("20s"));
        let r = report(&i);
        assert!(
            r[10].starts_with("not needed WEBHOOK_OTHER_URL: OTHER is not in"),
            "{r:?}"
        );
    }

    #[test]
    fn retention_policies() {
        let simple = run("RETENTION_POLICY=simple\nMAX_LOCAL_BACKUPS=15\nRETENTION_DAILY=7\n");
        let t = &simple.config["retention"];
        assert_eq!(t["keep_last"].as_integer(), Some(15));
        assert_eq!(t["keep_daily"].as_integer(), Some(0));
        assert_eq!(t["keep_yearly"].as_integer(), Some(0));
        let gfs = run(
            "RETENTION_POLICY=gfs\nMAX_LOCAL_BACKUPS=15\nRETENTION_DAILY=0\nRETENTION_YEARLY=0\n",
        );
        let t = &gfs.config["retention"];
        assert_eq!(t["keep_last"].as_integer(), Some(1));
        assert_eq!(t["keep_yearly"].as_integer(), Some(1000));
        assert_eq!(t["keep_daily"].as_integer(), Some(0));
    }
}
