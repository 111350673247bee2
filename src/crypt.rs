//! age encryption of archives (issue 6): the recipients a backup encrypts to, the keys read commands decrypt
//! with, and the errors either side can hit.
//!
//! The format is age-encryption.org/v1 unchanged, so `age -d -i KEY` on any rescue system opens an archive.
//! Only what Debian bookworm's `age` 1.1.1 reads is accepted: X25519 (`age1…`), ssh-ed25519 and ssh-rsa
//! recipients, and scrypt passphrases. Post-quantum and plugin recipients are refused by name.

use crate::exit;
use crate::fsx::dir_of;
use age::secrecy::{ExposeSecret, SecretString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// First bytes of a binary age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// First bytes of an ASCII-armored age file (`age -a`).
pub const ARMOR_MAGIC: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Whether a file starting with `magic` is age-encrypted (binary or armored).
pub fn is_encrypted(magic: &[u8]) -> bool {
    magic.starts_with(AGE_MAGIC) || magic.starts_with(ARMOR_MAGIC)
}

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("it is encrypted: give --identity FILE or --passphrase-file FILE")]
    NoKey,
    #[error("none of the given keys can decrypt it{0}")]
    WrongKey(&'static str),
    #[error("its encryption header is damaged or was tampered with ({0})")]
    Header(String),
    #[error("its encrypted data is damaged, tampered with or cut off ({0})")]
    Stream(String),
    /// A key, recipient or passphrase file that cannot be used (a usage error).
    #[error("{0}")]
    Key(String),
}

impl CryptError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CryptError::NoKey | CryptError::Key(_) => exit::USAGE,
            _ => exit::DAMAGED,
        }
    }

    /// As an `io::Error` that readers can pass up unchanged ([`find`] gets it back).
    pub fn into_io(self) -> io::Error {
        let kind = match self {
            CryptError::NoKey | CryptError::Key(_) | CryptError::WrongKey(_) => {
                io::ErrorKind::PermissionDenied
            }
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self)
    }
}

/// The [`CryptError`] in an error chain, also when it travels inside an `io::Error`.
pub fn find<'a>(
    chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> Option<&'a CryptError> {
    chain.into_iter().find_map(|e| {
        e.downcast_ref::<CryptError>()
            .or_else(|| e.downcast_ref::<io::Error>().and_then(in_io))
    })
}

pub fn in_io(e: &io::Error) -> Option<&CryptError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<CryptError>())
}

/// One public key an archive is encrypted to.
#[derive(Clone)]
pub enum Recipient {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipient::X25519(r) => write!(f, "{r}"),
            Recipient::Ssh(r) => write!(f, "{r}"),
        }
    }
}

impl Recipient {
    fn as_dyn(&self) -> &dyn age::Recipient {
        match self {
            Recipient::X25519(r) => r,
            Recipient::Ssh(r) => r,
        }
    }
    /// `x25519`, `ssh-ed25519` or `ssh-rsa`.
    pub fn kind(&self) -> &'static str {
        match self {
            Recipient::X25519(_) => "x25519",
            Recipient::Ssh(r) if r.to_string().starts_with("ssh-rsa") => "ssh-rsa",
            Recipient::Ssh(_) => "ssh-ed25519",
        }
    }
}

/// Parse one recipient as written in the config or a recipients file. The error says what the entry is
/// instead (without repeating it: the caller names the entry).
pub fn parse_recipient(s: &str) -> Result<Recipient, String> {
    let s = s.trim();
    if s.starts_with("age1pq1") || s.starts_with("age1tagpq1") {
        return Err(
            "post-quantum recipients are not supported (Debian's age 1.1.1 cannot decrypt them)"
                .into(),
        );
    }
    if let Ok(r) = s.parse::<age::x25519::Recipient>() {
        return Ok(Recipient::X25519(r));
    }
    if s.starts_with("ssh-") {
        return s
            .parse::<age::ssh::Recipient>()
            .map(Recipient::Ssh)
            .map_err(|e| match e {
                age::ssh::ParseRecipientKeyError::Unsupported(t) => {
                    format!("SSH key type {t} is not supported (use ssh-ed25519 or ssh-rsa)")
                }
                age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => {
                    "ssh-rsa key is too weak (under 2048 bits)".into()
                }
                _ => "not a valid SSH public key".into(),
            });
    }
    // age1<plugin-name>1<data>: a plugin recipient (needs a plugin binary on the rescue system).
    if let Some(rest) = s.strip_prefix("age1")
        && rest.contains('1')
        && rest.split('1').next().is_some_and(|n| !n.is_empty())
    {
        return Err(
            "plugin recipients are not supported (a bare rescue system has no age plugins)".into(),
        );
    }
    Err("not an age recipient (age1…) or SSH public key (ssh-ed25519 …)".into())
}

/// Recipients from a file: one per line, `#` comments and blank lines ignored (the `age -R` format).
pub fn read_recipients_file(path: &Path) -> Result<Vec<Recipient>, CryptError> {
    let text = fs::read_to_string(path).map_err(|e| cannot_read("recipients", path, &e))?;
    let lines = text.lines().map(str::trim).enumerate();
    let out = lines
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| {
            parse_recipient(line)
                .map_err(|e| CryptError::Key(format!("{}, line {}: {e}", path.display(), n + 1)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if out.is_empty() {
        return Err(CryptError::Key(format!(
            "the recipients file {} lists no recipient",
            path.display()
        )));
    }
    Ok(out)
}

fn cannot_read(what: &str, path: &Path, e: &dyn std::fmt::Display) -> CryptError {
    CryptError::Key(format!(
        "cannot read the {what} file {}: {e}",
        path.display()
    ))
}

/// A passphrase file's content: the first line, without its line end.
pub fn read_passphrase_file(path: &Path) -> Result<SecretString, CryptError> {
    let bad =
        |what: &str| CryptError::Key(format!("the passphrase file {} is {what}", path.display()));
    let bytes = fs::read(path).map_err(|e| cannot_read("passphrase", path, &e))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("not UTF-8 text"))?;
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(bad("empty"));
    }
    Ok(SecretString::from(first.to_string()))
}

/// How a backup encrypts: to public keys, or with a passphrase (age allows no mix of the two).
pub enum Seal {
    Recipients(Vec<Recipient>),
    Passphrase(SecretString),
}

impl Seal {
    /// What the backup encrypts with (`[encryption]`: a passphrase file, else recipients and a recipients
    /// file). Reads the files: their errors name the file (and line), never the passphrase.
    pub fn new(
        recipients: &[String],
        recipients_file: Option<&Path>,
        passphrase_file: Option<&Path>,
    ) -> Result<Seal, CryptError> {
        if let Some(p) = passphrase_file {
            return read_passphrase_file(p).map(Seal::Passphrase);
        }
        let mut out = Vec::new();
        for r in recipients {
            // Checked at load time already.
            out.push(parse_recipient(r).map_err(CryptError::Key)?);
        }
        if let Some(f) = recipients_file {
            out.extend(read_recipients_file(f)?);
        }
        Ok(Seal::Recipients(out))
    }

    /// `age: 2 recipients (x25519, ssh-ed25519)` or `age: passphrase (scrypt)`, for logs and `show`.
    pub fn describe(&self) -> String {
        match self {
            Seal::Recipients(rs) => {
                let mut kinds: Vec<&str> = rs.iter().map(Recipient::kind).collect();
                kinds.dedup();
                let (n, s) = (rs.len(), if rs.len() == 1 { "" } else { "s" });
                format!("age: {n} recipient{s} ({})", kinds.join(", "))
            }
            Seal::Passphrase(_) => "age: passphrase (scrypt)".into(),
        }
    }

    /// A fresh encryptor, and the keys that read the new archive back. For recipients that is an extra
    /// X25519 key made for this run and kept in memory only, so the backup's read-back decrypts exactly the
    /// bytes on disk without ever holding a key that could open older archives.
    pub fn encryptor(&self) -> io::Result<(age::Encryptor, Keys)> {
        match self {
            Seal::Recipients(rs) => {
                let readback = age::x25519::Identity::generate();
                let own = readback.to_public();
                let enc = age::Encryptor::with_recipients(
                    rs.iter()
                        .map(Recipient::as_dyn)
                        .chain(std::iter::once(&own as &dyn age::Recipient)),
                )
                .map_err(|e| io::Error::other(format!("age: {e}")))?;
                let keys = Keys {
                    identities: vec![Box::new(readback)],
                    passphrase: None,
                };
                Ok((enc, keys))
            }
            Seal::Passphrase(p) => Ok((
                age::Encryptor::with_user_passphrase(p.clone()),
                Keys {
                    identities: Vec::new(),
                    passphrase: Some(p.clone()),
                },
            )),
        }
    }
}

/// What read commands may decrypt with: `--identity` files and a `--passphrase-file`.
#[derive(Default)]
pub struct Keys {
    identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    passphrase: Option<SecretString>,
}

impl Keys {
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.passphrase.is_none()
    }

    /// Load identity files (age `AGE-SECRET-KEY-1…` lines, or an unencrypted OpenSSH private key) and a
    /// passphrase file. Also returns warnings about files others can read.
    pub fn load(
        identity_files: &[PathBuf],
        passphrase_file: Option<&Path>,
    ) -> Result<(Keys, Vec<String>), CryptError> {
        let mut keys = Keys::default();
        let mut warnings = Vec::new();
        for path in identity_files {
            warnings.extend(loose_permissions(path, "identity file"));
            keys.identities.extend(load_identity_file(path)?);
        }
        if let Some(p) = passphrase_file {
            warnings.extend(loose_permissions(p, "passphrase file"));
            keys.passphrase = Some(read_passphrase_file(p)?);
        }
        Ok((keys, warnings))
    }

    /// Start decrypting `src`, an age file (binary or armored) positioned at its first byte.
    pub fn decrypt<R: io::BufRead + Send + 'static>(
        &self,
        src: R,
    ) -> Result<Decrypting, CryptError> {
        if self.is_empty() {
            return Err(CryptError::NoKey);
        }
        let src = age::armor::ArmoredReader::new(src);
        let decryptor = age::Decryptor::new(src).map_err(header_error)?;
        let scrypt = decryptor.is_scrypt();
        let scrypt_identity = self.passphrase.as_ref().map(|p| {
            let mut id = age::scrypt::Identity::new(p.clone());
            // The age CLI writes work factor 18; allow well above it, but not hours of work.
            id.set_max_work_factor(22);
            id
        });
        let identities = self
            .identities
            .iter()
            .map(|i| i.as_ref() as &dyn age::Identity)
            .chain(scrypt_identity.iter().map(|i| i as &dyn age::Identity));
        match decryptor.decrypt(identities) {
            Ok(stream) => Ok(Decrypting(Box::new(stream))),
            Err(age::DecryptError::NoMatchingKeys) => Err(CryptError::WrongKey(
                match (scrypt, self.passphrase.is_some()) {
                    (true, false) => " (it is encrypted with a passphrase: use --passphrase-file)",
                    (false, true) if self.identities.is_empty() => {
                        " (it is encrypted to public keys: use --identity)"
                    }
                    _ => "",
                },
            )),
            // A wrong passphrase fails to open the scrypt stanza: that is a wrong key, not damage.
            Err(age::DecryptError::DecryptionFailed) if scrypt => {
                Err(CryptError::WrongKey(" (wrong passphrase)"))
            }
            Err(e) => Err(header_error(e)),
        }
    }
}

fn header_error(e: age::DecryptError) -> CryptError {
    match e {
        age::DecryptError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            CryptError::Header("the file ends inside the header".into())
        }
        age::DecryptError::ExcessiveWork { required, .. } => CryptError::Key(format!(
            "its passphrase uses scrypt work factor {required}, far above what age writes; refusing the work"
        )),
        other => CryptError::Header(other.to_string().trim().to_string()),
    }
}

/// The plaintext of an age file. Errors of the age stream (a tag that does not verify, a missing last chunk)
/// come out as [`CryptError::Stream`] inside the `io::Error`, so every reader reports them the same way.
pub struct Decrypting(Box<dyn Read + Send>);

impl Read for Decrypting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof if in_io(&e).is_none() => {
                let what = e.to_string();
                let cut = what.contains("truncated");
                let what = if cut {
                    "the file is cut off"
                } else {
                    what.trim()
                };
                CryptError::Stream(what.to_string()).into_io()
            }
            _ => e,
        })
    }
}

const IDENTITY_FILE_LIMIT: u64 = 1 << 20;

fn load_identity_file(
    path: &Path,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, CryptError> {
    let cannot = |e: &dyn std::fmt::Display| cannot_read("identity", path, e);
    let mut data = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(IDENTITY_FILE_LIMIT).read_to_end(&mut data))
        .map_err(|e| cannot(&e))?;
    let text = String::from_utf8_lossy(&data);
    if text.contains("AGE-SECRET-KEY-1") {
        // The error of IdentityFile names only the line number, never the line (it may hold a key).
        let file = age::IdentityFile::from_buffer(data.as_slice()).map_err(|e| cannot(&e))?;
        return file.into_identities().map_err(|e| cannot(&e));
    }
    if text.contains("PRIVATE KEY-----") {
        let id = age::ssh::Identity::from_buffer(data.as_slice(), Some(path.display().to_string()))
            .map_err(|e| cannot(&e))?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(id)]),
            age::ssh::Identity::Encrypted(_) => Err(CryptError::Key(format!(
                "the SSH key {} is protected by a passphrase, which proxkeep cannot ask for; \
                 use an unprotected copy on the rescue system, or an age identity",
                path.display()
            ))),
            age::ssh::Identity::Unsupported(_) => Err(CryptError::Key(format!(
                "the SSH key {} is of a type age does not support (use ssh-ed25519 or ssh-rsa)",
                path.display()
            ))),
        };
    }
    Err(CryptError::Key(format!(
        "{} is not an age identity file (AGE-SECRET-KEY-1…) or an OpenSSH private key",
        path.display()
    )))
}

/// A warning when a key file can be read by group or others.
pub fn loose_permissions(path: &Path, what: &str) -> Option<String> {
    let mode = fs::metadata(path).ok()?.mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "the {what} {} can be read by others (mode {mode:04o}): chmod 600 it",
            path.display()
        )
    })
}

const SECRET_KEY_PREFIX: &[u8] = b"AGE-SECRET-KEY-1";
/// `AGE-SECRET-KEY-1` and 58 bech32 characters.
const SECRET_KEY_LEN: usize = 74;

/// Passes bytes through and notes the recipient of every age X25519 secret key in them, so a backup can tell
/// when it is about to lock the key inside the archive it encrypts to it. The search is SIMD (memchr), and a
/// key split across two reads is found too.
pub struct IdentitySniffer<R> {
    inner: R,
    /// The last `SECRET_KEY_LEN - 1` bytes seen: a key that starts in them did not fit in the earlier read.
    carry: Vec<u8>,
    /// Recipients (`age1…`) of the keys found.
    pub found: Vec<String>,
    enabled: bool,
}

impl<R> IdentitySniffer<R> {
    /// A sniffer that looks only when `enabled` (else a plain pass-through).
    pub fn new(inner: R, enabled: bool) -> Self {
        IdentitySniffer {
            inner,
            carry: Vec::new(),
            found: Vec::new(),
            enabled,
        }
    }

    fn scan(&mut self, data: &[u8]) {
        use memchr::memmem;
        if !self.carry.is_empty() {
            let mut window = self.carry.clone();
            window.extend_from_slice(&data[..data.len().min(SECRET_KEY_LEN)]);
            for p in memmem::find_iter(&window, SECRET_KEY_PREFIX)
                .filter(|p| *p < self.carry.len() && p + SECRET_KEY_LEN <= window.len())
            {
                note_key(&mut self.found, &window[p..p + SECRET_KEY_LEN]);
            }
        }
        for p in
            memmem::find_iter(data, SECRET_KEY_PREFIX).filter(|p| p + SECRET_KEY_LEN <= data.len())
        {
            note_key(&mut self.found, &data[p..p + SECRET_KEY_LEN]);
        }
        let keep = SECRET_KEY_LEN - 1;
        self.carry
            .extend_from_slice(&data[data.len().saturating_sub(keep)..]);
        let excess = self.carry.len().saturating_sub(keep);
        self.carry.drain(..excess);
    }
}

/// Add the recipient of `key` to `found` if it is a valid identity not noted yet.
fn note_key(found: &mut Vec<String>, key: &[u8]) {
    if let Some(id) = std::str::from_utf8(key)
        .ok()
        .and_then(|s| s.parse::<age::x25519::Identity>().ok())
    {
        let public = id.to_public().to_string();
        if !found.contains(&public) {
            found.push(public);
        }
    }
}

impl<R: Read> Read for IdentitySniffer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.enabled {
            self.scan(&buf[..n]);
        }
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecryptFileError {
    #[error(transparent)]
    Crypt(CryptError),
    #[error("{0}: {1}")]
    Io(String, io::Error),
}

/// Decrypt `archive` into a new file `out` (mode 0600). The plaintext goes to a temp file beside `out` that
/// becomes `out` only once age has authenticated the last chunk: a wrong key, a flipped byte or a cut-off
/// file leave no output at all. Returns the plaintext size.
pub fn decrypt_file(archive: &Path, out: &Path, keys: &Keys) -> Result<u64, DecryptFileError> {
    use std::io::BufRead;
    let io_err = |what: String| move |e: io::Error| DecryptFileError::Io(what, e);
    let file =
        fs::File::open(archive).map_err(io_err(format!("cannot open {}", archive.display())))?;
    let mut src = io::BufReader::with_capacity(256 * 1024, file);
    let magic = src
        .fill_buf()
        .map_err(io_err(format!("cannot read {}", archive.display())))?;
    if !is_encrypted(magic) {
        return Err(DecryptFileError::Crypt(CryptError::Key(format!(
            "{} is not age-encrypted: it can be read as it is",
            archive.display()
        ))));
    }
    let writing = format!("cannot write {}", out.display());
    if out.exists() {
        let e = io::Error::new(io::ErrorKind::AlreadyExists, "it exists already");
        return Err(DecryptFileError::Io(writing, e));
    }
    let mut plain = keys.decrypt(src).map_err(DecryptFileError::Crypt)?;
    let tmp = private_temp(dir_of(out), ".proxkeep-decrypt-").map_err(io_err(writing.clone()))?;
    let mut w = io::BufWriter::with_capacity(1 << 20, tmp);
    // The temp file is removed when `w` drops on any error below.
    let bytes = io::copy(&mut plain, &mut w).map_err(|e| match in_io(&e) {
        Some(_) => {
            DecryptFileError::Crypt(match e.into_inner().map(|b| b.downcast::<CryptError>()) {
                Some(Ok(c)) => *c,
                _ => CryptError::Stream("decryption error".into()),
            })
        }
        None => DecryptFileError::Io(format!("cannot decrypt {}", archive.display()), e),
    })?;
    // into_inner flushes the buffer.
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|tmp| persist_new(tmp, out))
        .map_err(io_err(writing))?;
    Ok(bytes)
}

static INSTALLED: RwLock<Option<Arc<Keys>>> = RwLock::new(None);

/// Set the keys every archive opened by path in this process decrypts with (the CLI does it once, from
/// `--identity`/`--passphrase-file`).
pub fn install(keys: Keys) {
    *INSTALLED.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(keys));
}

pub fn installed() -> Arc<Keys> {
    INSTALLED
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// A new X25519 identity: the identity file's text (as `age-keygen` writes it) and the public recipient.
pub fn generate(created: &str) -> (SecretString, String) {
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    );
    (SecretString::from(text), public)
}

/// Write a new identity file with mode 0600 atomically; never replaces an existing file.
pub fn write_identity_file(path: &Path, text: &SecretString) -> io::Result<()> {
    use std::io::Write;
    let mut tmp = private_temp(dir_of(path), ".proxkeep-key-")?;
    tmp.write_all(text.expose_secret().as_bytes())?;
    persist_new(tmp, path)
}

/// A new temp file with mode 0600 in `dir`.
fn private_temp(dir: &Path, prefix: &str) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
}

/// Sync `tmp` and make it `path`, then sync the directory. A file at `path` is never replaced (a key file may
/// be the only copy).
fn persist_new(tmp: tempfile::NamedTempFile, path: &Path) -> io::Result<()> {
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    fs::File::open(dir_of(path))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn encrypt(seal: &Seal, data: &[u8]) -> (Vec<u8>, Keys) {
        let (enc, keys) = seal.encryptor().unwrap();
        let mut w = enc.wrap_output(Vec::new()).unwrap();
        w.write_all(data).unwrap();
        (w.finish().unwrap(), keys)
    }

    fn read_all(keys: &Keys, data: Vec<u8>) -> Result<Vec<u8>, CryptError> {
        let mut r = keys.decrypt(io::Cursor::new(data))?;
        let mut out = Vec::new();
        match r.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(match in_io(&e) {
                Some(CryptError::Stream(s)) => CryptError::Stream(s.clone()),
                _ => panic!("not a crypt error: {e}"),
            }),
        }
    }

    #[test]
    fn recipients_parse_or_say_why_not() {
        let id = age::x25519::Identity::generate();
        let pk = id.to_public().to_string();
        assert!(matches!(parse_recipient(&pk), Ok(Recipient::X25519(_))));
        let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";
        assert_eq!(parse_recipient(ssh).unwrap().kind(), "ssh-ed25519");
        let pq = parse_recipient("age1pq1qqqq").unwrap_err();
        assert!(pq.contains("post-quantum"), "{pq}");
        let plugin = parse_recipient("age1yubikey1qwerty").unwrap_err();
        assert!(plugin.contains("plugin"), "{plugin}");
        let typo = parse_recipient(&pk[..pk.len() - 1]).unwrap_err();
        assert!(typo.contains("not an age recipient"), "{typo}");
        assert!(parse_recipient("ssh-ed25519 AAAA").is_err());
    }

    #[test]
    fn round_trip_with_readback_key_and_real_key() {
        let id = age::x25519::Identity::generate();
        let seal = Seal::Recipients(vec![Recipient::X25519(id.to_public())]);
        let (ct, readback) = encrypt(&seal, b"hello archive");
        assert!(ct.starts_with(AGE_MAGIC));
        assert_eq!(read_all(&readback, ct.clone()).unwrap(), b"hello archive");
        let mine = Keys {
            identities: vec![Box::new(id)],
            passphrase: None,
        };
        assert_eq!(read_all(&mine, ct).unwrap(), b"hello archive");
    }

    #[test]
    fn wrong_key_tamper_and_truncation_are_told_apart() {
        let id = age::x25519::Identity::generate();
        let seal = Seal::Recipients(vec![Recipient::X25519(id.to_public())]);
        let data = vec![7u8; 200_000];
        let (ct, keys) = encrypt(&seal, &data);
        let other = Keys {
            identities: vec![Box::new(age::x25519::Identity::generate())],
            passphrase: None,
        };
        assert!(matches!(
            read_all(&other, ct.clone()),
            Err(CryptError::WrongKey(_))
        ));
        assert!(matches!(
            read_all(&Keys::default(), ct.clone()),
            Err(CryptError::NoKey)
        ));
        let mut flipped = ct.clone();
        let at = flipped.len() - 1000;
        flipped[at] ^= 1;
        assert!(matches!(
            read_all(&keys, flipped),
            Err(CryptError::Stream(_))
        ));
        // Cut inside a chunk, and exactly at a chunk boundary (64 KiB + 16 byte tag per chunk).
        let header_len = ct.len() - (200_000 + 4 * 16);
        for cut in [ct.len() - 70_000, header_len + 65_536 + 16] {
            match read_all(&keys, ct[..cut].to_vec()) {
                Err(CryptError::Stream(_)) => {}
                other => panic!("cut at {cut}: {:?}", other.map(|v| v.len())),
            }
        }
        // A flipped byte in the header breaks its MAC.
        let mut header = ct.clone();
        let nl = header.iter().position(|b| *b == b'\n').unwrap();
        header[nl + 20] ^= 1;
        assert!(matches!(
            read_all(&keys, header),
            Err(CryptError::Header(_) | CryptError::WrongKey(_))
        ));
    }

    #[test]
    fn passphrase_mode() {
        let mut r = age::scrypt::Recipient::new(SecretString::from("correct horse".to_string()));
        r.set_work_factor(10);
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut w = enc.wrap_output(Vec::new()).unwrap();
        w.write_all(b"secret").unwrap();
        let ct = w.finish().unwrap();
        let good = Keys {
            identities: Vec::new(),
            passphrase: Some(SecretString::from("correct horse".to_string())),
        };
        assert_eq!(read_all(&good, ct.clone()).unwrap(), b"secret");
        let bad = Keys {
            identities: Vec::new(),
            passphrase: Some(SecretString::from("wrong".to_string())),
        };
        match read_all(&bad, ct.clone()) {
            Err(CryptError::WrongKey(h)) => assert!(h.contains("passphrase"), "{h}"),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        let id_only = Keys {
            identities: vec![Box::new(age::x25519::Identity::generate())],
            passphrase: None,
        };
        match read_all(&id_only, ct) {
            Err(CryptError::WrongKey(h)) => assert!(h.contains("--passphrase-file"), "{h}"),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
    }

    #[test]
    fn generated_identity_file_loads_and_is_private() {
        let d = tempfile::tempdir().unwrap();
        let (text, public) = generate("2026-11-28T00:00:00Z");
        let path = d.path().join("key.txt");
        write_identity_file(&path, &text).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert!(
            write_identity_file(&path, &text).is_err(),
            "never overwrites"
        );
        let (keys, warnings) = Keys::load(std::slice::from_ref(&path), None).unwrap();
        assert!(warnings.is_empty());
        let seal = Seal::Recipients(vec![parse_recipient(&public).unwrap()]);
        let (ct, _) = encrypt(&seal, b"x");
        assert_eq!(read_all(&keys, ct).unwrap(), b"x");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warnings) = Keys::load(&[path], None).unwrap();
        assert!(warnings[0].contains("0644"), "{warnings:?}");
    }

    #[test]
    fn sniffer_finds_keys_anywhere_in_the_stream() {
        let (text, public) = generate("2026-11-28T00:00:00Z");
        let text = text.expose_secret().as_bytes().to_vec();
        for pad in [0usize, 1, 10, 73, 74, 100, 4090] {
            let mut data = vec![b'x'; pad];
            data.extend_from_slice(&text);
            data.extend_from_slice(b"tail");
            // Every read size, so the key is split at every offset.
            for chunk in [1usize, 7, 50, 73, 74, 75, 4096] {
                let mut s = IdentitySniffer::new(io::Cursor::new(data.clone()), true);
                let mut buf = vec![0u8; chunk];
                while s.read(&mut buf).unwrap() > 0 {}
                assert_eq!(s.found, vec![public.clone()], "pad {pad} chunk {chunk}");
            }
        }
        let mut s = IdentitySniffer::new(
            io::Cursor::new(b"AGE-SECRET-KEY-1 not a key".to_vec()),
            true,
        );
        io::copy(&mut s, &mut io::sink()).unwrap();
        assert!(s.found.is_empty());
    }

    #[test]
    fn recipients_file_errors_name_the_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.txt");
        let pk = age::x25519::Identity::generate().to_public().to_string();
        fs::write(&p, format!("# team\n{pk}\n\nage1nonsense\n")).unwrap();
        let e = read_recipients_file(&p).unwrap_err().to_string();
        assert!(e.contains("line 4"), "{e}");
        fs::write(&p, format!("# team\n{pk}\n")).unwrap();
        assert_eq!(read_recipients_file(&p).unwrap().len(), 1);
    }
}
