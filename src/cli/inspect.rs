//! `list`, `show`, `ls`, `cat`, `verify`, `diff` (issue 3).

use super::{Exit, Globals};
use clap::Subcommand;
use std::sync::atomic::AtomicBool;

#[derive(Subcommand, Debug)]
pub enum Commands {}

pub fn run(cmd: &Commands, _g: &Globals, _cancel: &AtomicBool) -> Result<i32, Exit> {
    match *cmd {}
}
