//! `--junit FILE`: JUnit XML that both schemas CI servers validate against accept —
//! Jenkins' (xunit-plugin junit-10.xsd) and Ant's (windyroad JUnit.xsd), the
//! stricter one: `<testsuites>` without attributes, a `<testsuite>` per lab with
//! `id`, `package`, `timestamp`, `hostname`, `<properties>` first and
//! `<system-out>`/`<system-err>` last, a `<testcase>` per step (and one for the
//! code outside steps when it checked something or stopped the lab) holding at most
//! one `<failure>` (a check failed), `<error>` (script, environment, timeout,
//! interruption) or `<skipped>`, each with a `type`.
//!
//! Written with quick-xml rather than quick-junit: quick-junit puts `name`,
//! `tests`, ... (and since 0.7 `skipped`) on `<testsuites>`, which Ant's schema
//! refuses, and `<system-out>` inside test cases, which it refuses too.

use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::{LabReport, Outcome, StepOutcome, StepReport};

pub fn render(labs: &[LabReport]) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    let written = write(&mut w, labs);
    debug_assert!(written.is_ok(), "writing XML into memory does not fail");
    let mut text = String::from_utf8(w.into_inner()).unwrap_or_default();
    text.push('\n');
    text
}

fn write(w: &mut Writer<Vec<u8>>, labs: &[LabReport]) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let timestamp = timestamp();
    let hostname = hostname();
    w.create_element("testsuites").write_inner_content(|w| {
        for (id, lab) in labs.iter().enumerate() {
            suite(w, id, lab, &timestamp, &hostname)?;
        }
        Ok(())
    })?;
    Ok(())
}

fn suite(w: &mut Writer<Vec<u8>>, id: usize, lab: &LabReport, timestamp: &str, hostname: &str) -> io::Result<()> {
    let cases = lab.cases();
    let count = |f: fn(StepOutcome) -> bool| cases.iter().filter(|c| f(c.outcome)).count();
    let failures = count(|o| o == StepOutcome::Failed);
    let errors = count(|o| matches!(o, StepOutcome::Error | StepOutcome::Unfinished));
    let skipped = count(|o| o == StepOutcome::Skipped);
    let classname = classname(&lab.path);
    w.create_element("testsuite")
        .with_attribute(("name", clean(&lab.path).as_str()))
        .with_attribute(("tests", cases.len().to_string().as_str()))
        .with_attribute(("failures", failures.to_string().as_str()))
        .with_attribute(("errors", errors.to_string().as_str()))
        .with_attribute(("skipped", skipped.to_string().as_str()))
        .with_attribute(("time", seconds(lab.seconds).as_str()))
        .with_attribute(("timestamp", timestamp))
        .with_attribute(("hostname", hostname))
        .with_attribute(("id", id.to_string().as_str()))
        .with_attribute(("package", classname.as_str()))
        .write_inner_content(|w| {
            w.create_element("properties").write_inner_content(|w| {
                let outcome = format!("{:?}", lab.outcome).to_lowercase();
                let mut properties = vec![("outcome", outcome), ("exit_code", lab.exit_code.to_string())];
                if !lab.kernel.is_empty() {
                    properties.push(("kernel", clean(&lab.kernel)));
                }
                for (name, value) in properties {
                    w.create_element("property")
                        .with_attribute(("name", name))
                        .with_attribute(("value", value.as_str()))
                        .write_empty()?;
                }
                Ok(())
            })?;
            for case in &cases {
                testcase(w, lab, case, &classname)?;
            }
            w.create_element("system-out").write_text_content(BytesText::new(&clean(&lab.output)))?;
            w.create_element("system-err").write_empty()?;
            Ok(())
        })?;
    Ok(())
}

fn testcase(w: &mut Writer<Vec<u8>>, lab: &LabReport, case: &StepReport, classname: &str) -> io::Result<()> {
    let element = w
        .create_element("testcase")
        .with_attribute(("name", clean(&case.name()).as_str()))
        .with_attribute(("classname", classname))
        .with_attribute(("time", seconds(case.seconds).as_str()));
    let message = clean(case.message.as_deref().unwrap_or(""));
    let body = {
        let mut body = String::new();
        if let Some(line) = case.at_line.filter(|l| *l > 0) {
            body += &format!("{}:{line}\n", lab.path);
        }
        if let Some(detail) = &case.detail {
            body += detail;
        }
        clean(&body)
    };
    let (tag, ty) = match case.outcome {
        StepOutcome::Passed => return element.write_empty().map(|_| ()),
        StepOutcome::Skipped => ("skipped", "skipped"),
        StepOutcome::Failed => ("failure", "check_failed"),
        StepOutcome::Error | StepOutcome::Unfinished => ("error", error_type(lab)),
    };
    element.write_inner_content(|w| {
        let e = w.create_element(tag).with_attribute(("type", ty)).with_attribute(("message", message.as_str()));
        if body.is_empty() {
            e.write_empty()?;
        } else {
            e.write_text_content(BytesText::new(&body))?;
        }
        Ok(())
    })?;
    Ok(())
}

fn error_type(lab: &LabReport) -> &'static str {
    match (lab.outcome, lab.exit_code) {
        (Outcome::Timeout, _) => "timeout",
        (Outcome::Interrupted, _) => "interrupted",
        (_, 3) => "environment",
        (_, 2) => "script_error",
        _ => "error",
    }
}

/// `labs/scale/w1.rhai` -> `labs.scale.w1` (CI servers show package.class).
fn classname(path: &str) -> String {
    let p = path.strip_suffix(".rhai").unwrap_or(path).trim_start_matches("./");
    let name: String = p.chars().map(|c| if c == '/' || c.is_whitespace() { '.' } else { c }).collect();
    let name = clean(name.trim_matches('.'));
    if name.is_empty() {
        "lab".into()
    } else {
        name
    }
}

fn seconds(s: f64) -> String {
    format!("{:.3}", if s.is_finite() && s >= 0.0 { s } else { 0.0 })
}

/// Text XML 1.0 can carry: no control characters but tab and newline (a lab's
/// output may hold terminal escapes or a program's binary output).
fn clean(s: &str) -> String {
    s.chars().filter(|c| matches!(c, '\n' | '\t') || !c.is_control()).collect()
}

/// Now, as Ant's schema wants it: local-less ISO 8601 without a zone (UTC).
fn timestamp() -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    t.trim_end_matches('Z').to_string()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "localhost".into())
}
