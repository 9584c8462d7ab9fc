//! `--format json`: one document for the whole run.
//!
//! Schema "netlab-report", version 1 (documented in the book, "netlab in CI"):
//! `{schema, version, seconds, totals: {labs, passed, failed, errors, skipped,
//! timeouts, interrupted, checks_passed, checks_failed}, labs: [{path, outcome,
//! exit_code, seconds, message?, line?, steps: [{number, title, line, outcome,
//! seconds, checks: [{passed, text, line, reason?}], message?, detail?, at_line?}],
//! output?, kernel}]}` (`kernel`: the `uname -r` the lab ran on). Fields are only ever added within a version.

use serde::Serialize;

use super::{LabReport, Totals};

pub const SCHEMA: &str = "netlab-report";
pub const VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    version: u32,
    seconds: f64,
    totals: Totals,
    labs: &'a [LabReport],
}

pub fn render(labs: &[LabReport], seconds: f64) -> String {
    let doc = Document { schema: SCHEMA, version: VERSION, seconds, totals: Totals::of(labs), labs };
    // Serializing plain data cannot fail.
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
