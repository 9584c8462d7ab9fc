//! Turning whatever stopped a lab into a miette diagnostic that points at the line
//! of the user's script: Rhai parse and evaluation errors, netlab's runtime errors
//! and failed checks. For errors raised inside a stdlib module, the span is the
//! outermost call in the user's script.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use netlab_runtime::{Error, ErrorClass};
use rhai::{EvalAltResult, ParseError, Position};

use super::api;
use super::limits::{self, Stopped};
use super::values::Failure;

/// What the run's exit code should be for this diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    CheckFailed,
    ScriptError,
    Environment,
    Interrupted,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::CheckFailed => 1,
            Verdict::ScriptError => 2,
            Verdict::Environment => 3,
            Verdict::Interrupted => netlab_runtime::interrupt::exit_code(),
        }
    }
}

#[derive(Debug)]
pub struct LabDiagnostic {
    pub code: String,
    pub message: String,
    pub help: Option<String>,
    pub label: String,
    pub span: Option<SourceSpan>,
    pub src: NamedSource<String>,
    pub verdict: Verdict,
    /// A lint that does not stop the lab (`netlab check` prints it, exit 0).
    pub warning: bool,
}

impl fmt::Display for LabDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LabDiagnostic {}

impl Diagnostic for LabDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(if self.warning { miette::Severity::Warning } else { miette::Severity::Error })
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(Some(self.label.clone()), span))))
    }
}

/// The netlab payload inside a Rhai error, looking through function-call wrappers.
pub fn payload(e: &EvalAltResult) -> Option<Failure> {
    match e {
        EvalAltResult::ErrorRuntime(d, _) => d.clone().try_cast::<Failure>(),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            payload(inner)
        }
        _ => None,
    }
}

/// The innermost error and the position to show: inside the user's own script we
/// follow the error to where it happened; inside a module we stop at the call.
fn locate(e: &EvalAltResult) -> (&EvalAltResult, Position) {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, src, inner, pos) => {
            if src.is_empty() {
                let (inner, ipos) = locate(inner);
                (inner, if ipos.is_none() { *pos } else { ipos })
            } else {
                (innermost(inner), *pos)
            }
        }
        EvalAltResult::ErrorInModule(_, inner, pos) => (innermost(inner), *pos),
        other => (other, other.position()),
    }
}

/// Where in the user's script an error is shown.
pub fn position(e: &EvalAltResult) -> Position {
    locate(e).1
}

fn innermost(e: &EvalAltResult) -> &EvalAltResult {
    match e {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) => {
            innermost(inner)
        }
        other => other,
    }
}

pub struct Source<'a> {
    pub path: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    fn named(&self) -> NamedSource<String> {
        NamedSource::new(self.path, self.text.to_string())
    }

    /// A script-error diagnostic at a position.
    pub fn diagnostic_at(&self, pos: Position, code: &str, message: String) -> LabDiagnostic {
        LabDiagnostic {
            code: code.into(),
            message,
            help: None,
            label: "here".into(),
            span: self.span_at(pos),
            src: self.named(),
            verdict: Verdict::ScriptError,
            warning: false,
        }
    }

    /// Byte offset of a Rhai position (1-based line, 1-based column in chars).
    fn offset(&self, pos: Position) -> Option<usize> {
        let (line, col) = (pos.line()?, pos.position().unwrap_or(1));
        let mut offset = 0;
        for (i, l) in self.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                let within: usize = l.chars().take(col.saturating_sub(1)).map(char::len_utf8).sum();
                return Some(offset + within);
            }
            offset += l.len();
        }
        None
    }

    /// The span of the expression starting at `pos`: a whole call `f(...)` when it is
    /// one, else the word there.
    fn span_at(&self, pos: Position) -> Option<SourceSpan> {
        let start = self.offset(pos)?;
        let rest = &self.text[start..];
        let word = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let after = rest[word..].trim_start();
        if word > 0 && after.starts_with('(') {
            let open = start + (rest.len() - after.len());
            if let Some(close) = matching_paren(&self.text[open..]) {
                return Some(SourceSpan::new(start.into(), open + close + 1 - start));
            }
        }
        let len = if word > 0 { word } else { rest.chars().next().map(char::len_utf8).unwrap_or(0) };
        Some(SourceSpan::new(start.into(), len))
    }

    /// Narrows a call's span to the string literal `"value"` inside it, if present.
    fn narrow_to_literal(&self, span: SourceSpan, value: &str) -> SourceSpan {
        let call = &self.text[span.offset()..span.offset() + span.len()];
        let quoted = format!("\"{value}\"");
        match call.find(&quoted) {
            Some(i) => SourceSpan::new((span.offset() + i).into(), quoted.len()),
            None => span,
        }
    }
}

impl Source<'_> {
    /// Whether the parser stopped at `in` used as a map key (`#{in: "eth0"}`).
    fn keyword_as_key(&self, pos: Position) -> bool {
        let Some(start) = self.offset(pos) else { return false };
        let rest = &self.text[start..];
        rest.strip_prefix("in").is_some_and(|after| after.trim_start().starts_with(':'))
    }

    /// Narrows a call's span to its option `key: value` (in a `#{...}` map), if present.
    fn narrow_to_option(&self, span: SourceSpan, key: &str) -> SourceSpan {
        let call = &self.text[span.offset()..span.offset() + span.len()];
        let found = [format!("{key}:"), format!("\"{key}\":")].iter().find_map(|k| call.find(k.as_str()));
        match found {
            Some(i) => {
                let rest = &call[i..];
                let end = rest.find([',', '}', '\n']).unwrap_or(rest.len());
                SourceSpan::new((span.offset() + i).into(), rest[..end].trim_end().len())
            }
            None => span,
        }
    }
}

/// Byte index of the ')' matching the '(' at the start of `s`, skipping strings.
fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut in_str: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if let Some(q) = in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                in_str = None;
            }
            continue;
        }
        match c {
            '"' | '`' => in_str = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The string in the script that an error is about, to underline it precisely.
fn offending_value(e: &Error) -> Option<&str> {
    match e {
        Error::BadLinkName { name, .. } | Error::BadNodeName { name, .. } | Error::NoSuchNode { name, .. } => {
            Some(name)
        }
        Error::BadAddress { value, .. } => Some(value),
        Error::NoSuchLink { link, .. } => Some(link),
        Error::BadSysctl { key, .. } => Some(key),
        _ => None,
    }
}

pub fn from_parse_error(src: &Source, err: &ParseError) -> LabDiagnostic {
    let help = if src.keyword_as_key(err.position()) {
        "`in` is a Rhai keyword, so `#{in: ...}` does not parse: the incoming interface is `iif` \
         (and the outgoing one `oif`, as nft and iptables say)"
    } else {
        "the lab is a Rhai script: see book/src/reference.md for the syntax netlab uses"
    };
    LabDiagnostic {
        code: "netlab::parse".into(),
        message: format!("syntax error: {}", err.err_type()),
        help: Some(help.into()),
        label: "here".into(),
        span: src.span_at(err.position()),
        src: src.named(),
        verdict: Verdict::ScriptError,
        warning: false,
    }
}

pub fn from_eval_error(src: &Source, err: &EvalAltResult, step: Option<String>) -> LabDiagnostic {
    let (inner, pos) = locate(err);
    let span = src.span_at(pos);
    let in_step = step.map(|s| format!(" (step {s})")).unwrap_or_default();
    let mut d = LabDiagnostic {
        code: "netlab::script".into(),
        message: String::new(),
        help: None,
        label: "here".into(),
        span,
        src: src.named(),
        verdict: Verdict::ScriptError,
        warning: false,
    };
    match payload(inner) {
        Some(Failure::Check(c)) => {
            d.code = "netlab::check_failed".into();
            d.message = format!("check failed{in_step}: {}: {}", c.title, c.detail);
            d.help = c.hint.clone();
            d.label = "this check failed".into();
            d.verdict = Verdict::CheckFailed;
        }
        Some(Failure::Skip(reason)) => {
            d.code = "netlab::skipped".into();
            d.message = format!("skipped: {reason}");
            d.label = "skipped here".into();
        }
        Some(Failure::StopAfter(step)) => {
            d.code = "netlab::stopped".into();
            d.message = format!("stopped after step {step} (--until)");
        }
        Some(Failure::Error(e)) => {
            d.code = e.code().map(|c| c.to_string()).unwrap_or_else(|| "netlab::error".into());
            d.message = format!("{e}{in_step}");
            d.help = e.help().map(|h| h.to_string());
            if let (Some(span), Some(value)) = (d.span, offending_value(&e)) {
                d.span = Some(src.narrow_to_literal(span, value));
            }
            if let (Some(span), Error::BadOption { option, .. }) = (d.span, &*e) {
                d.span = Some(src.narrow_to_option(span, option));
                d.label = format!("this {option}");
            }
            d.verdict = match e.class() {
                ErrorClass::Script => Verdict::ScriptError,
                ErrorClass::Environment if matches!(*e, Error::Interrupted) => Verdict::Interrupted,
                ErrorClass::Environment => Verdict::Environment,
            };
        }
        None => rhai_error(inner, &mut d, &in_step),
    }
    d
}

/// "SIGINT", or the number of a signal nix does not know.
fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig).map(|s| s.as_str().to_string()).unwrap_or_else(|_| format!("signal {sig}"))
}

/// Rhai's own errors, reworded for lab authors.
fn rhai_error(e: &EvalAltResult, d: &mut LabDiagnostic, in_step: &str) {
    match e {
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            let name = sig.split([' ', '(']).next().unwrap_or(sig).trim();
            let got = sig[name.len()..].trim();
            if let Some(usage) = api::usage(name) {
                d.code = "netlab::arg_type".into();
                d.message = format!("wrong arguments for {name}(){in_step}: got {}", api::readable_types(got));
                d.help = Some(format!("usage: {usage}"));
            } else {
                d.code = "netlab::unknown_function".into();
                d.message = format!("unknown function {name}(){in_step}");
                d.help = api::suggest(name).map(|s| format!("did you mean {s}?"));
            }
        }
        EvalAltResult::ErrorMismatchDataType(expected, got, _) => {
            d.code = "netlab::arg_type".into();
            d.message = format!("expected {expected}, got {}{in_step}", api::readable_types(got));
        }
        EvalAltResult::ErrorVariableNotFound(name, _) => {
            d.code = "netlab::unknown_variable".into();
            d.message = format!("unknown variable {name}{in_step}");
            d.help = Some(if name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                format!("declare it with `let` before using it, or give it with --set {name}=VALUE")
            } else {
                "declare it with `let` before using it".into()
            });
        }
        EvalAltResult::ErrorTerminated(token, _) => match token.clone().try_cast::<Stopped>() {
            Some(Stopped::MaxTime(limit)) => {
                d.code = "netlab::max_time".into();
                d.message = format!("the lab ran longer than its time limit of {} s{in_step}", limit.as_secs_f64());
                d.help = Some(
                    "a loop that never ends, or a wait that is too long? Raise the limit with --max-time SECONDS"
                        .into(),
                );
                d.label = "running here when the time ran out".into();
            }
            Some(Stopped::Solution) => {
                d.code = "netlab::solution_timeout".into();
                d.message = format!("the solution ran longer than its --timeout{in_step}");
                d.label = "running here when the time ran out".into();
            }
            Some(Stopped::Signal(sig)) => {
                d.code = "netlab::interrupted".into();
                d.message = format!("interrupted by {}{in_step}", signal_name(sig));
                d.label = "running here when the signal came".into();
                d.verdict = Verdict::Interrupted;
            }
            None => {
                d.code = "netlab::interrupted".into();
                d.message = "interrupted".into();
                d.verdict = Verdict::Interrupted;
            }
        },
        EvalAltResult::ErrorTooManyOperations(_) => {
            d.code = "netlab::max_operations".into();
            d.message = format!("the lab took more than its budget of script operations{in_step}");
            d.help = Some(format!(
                "a loop that never ends? Raise the budget with --max-operations N (default {})",
                limits::DEFAULT_MAX_OPERATIONS
            ));
            d.label = "running here when the budget ran out".into();
        }
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            d.code = "netlab::too_large".into();
            d.message = format!("{what} is larger than netlab allows{in_step}");
            d.help = Some(format!(
                "netlab bounds a lab's data: strings to {} MiB, arrays to {} items and maps to {} entries (nested ones counted together)",
                limits::MAX_STRING_BYTES >> 20,
                limits::MAX_ARRAY_ITEMS,
                limits::MAX_MAP_ENTRIES
            ));
        }
        EvalAltResult::ErrorRuntime(value, _) => {
            d.message = format!("{value}{in_step}");
            d.code = "netlab::thrown".into();
        }
        other => {
            d.message = format!("{other}{in_step}");
            // Rhai appends " (line x, position y)"; the span shows that already.
            if let Some(i) = d.message.find(" (line ") {
                d.message.truncate(i);
            }
        }
    }
}
