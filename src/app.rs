//! The journeys: each takes what the command line resolved and returns a report value.

pub mod backup;
