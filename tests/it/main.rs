//! One integration-test binary: every test runs the real `proxkeep` binary against a fixture root and checks
//! the result with real tools (GNU tar, zstd, xz, gzip, sha256sum, sqlite3, rclone).

mod backup;
mod cli;
mod collection;
mod crypt;
mod drill;
mod faults;
mod faults_fd;
mod faults_input;
mod faults_read;
mod faults_run;
mod import;
mod inspect;
mod merge;
mod netapply;
mod netapply_remap;
mod nic;
mod notify;
mod package;
mod perf;
mod rename;
mod restore;
mod rewrites_review;
mod runbook;
mod safety;
mod tiers;
mod util;
