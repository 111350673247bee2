//! One integration-test binary: every test runs the real `proxkeep` binary against a fixture root and checks
//! the result with real tools (GNU tar, zstd, xz, gzip, sha256sum, sqlite3, rclone).

mod backup;
mod cli;
mod crypt;
mod inspect;
mod notify;
mod perf;
mod restore;
mod tiers;
mod util;
