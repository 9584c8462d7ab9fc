//! `--format tap`: TAP version 14. One test point per lab; its steps are a subtest
//! (4 spaces in, introduced by `# Subtest: PATH`), each step a test point with a
//! YAML diagnostic block when it did not pass; skips as `# SKIP reason`.

use super::{LabReport, Outcome, StepOutcome, StepReport};

pub fn render(labs: &[LabReport]) -> String {
    let mut out = String::from("TAP version 14\n");
    out += &format!("1..{}\n", labs.len());
    for (i, lab) in labs.iter().enumerate() {
        out += &format!("# Subtest: {}\n", one_line(&lab.path));
        let cases = lab.cases();
        out += &format!("    1..{}\n", cases.len());
        if !lab.kernel.is_empty() {
            out += &format!("    # kernel {}\n", one_line(&lab.kernel));
        }
        for (j, step) in cases.iter().enumerate() {
            step_point(&mut out, j + 1, step, lab);
        }
        let description = one_line(&lab.path);
        match lab.outcome {
            Outcome::Passed => out += &format!("ok {} - {description}\n", i + 1),
            Outcome::Skipped => {
                let reason = lab.message.as_deref().unwrap_or("skipped");
                out += &format!("ok {} - {description} # SKIP {}\n", i + 1, one_line(reason));
            }
            _ => {
                out += &format!("not ok {} - {description}\n", i + 1);
                let mut fields = vec![("outcome", yaml_str(&format!("{:?}", lab.outcome).to_lowercase()))];
                fields.push(("exit_code", lab.exit_code.to_string()));
                if let Some(m) = &lab.message {
                    fields.push(("message", yaml_str(m)));
                }
                if let Some(at) = lab.location() {
                    fields.push(("at", yaml_str(&at)));
                }
                yaml_block(&mut out, "  ", &fields, None);
            }
        }
    }
    out
}

fn step_point(out: &mut String, n: usize, step: &StepReport, lab: &LabReport) {
    let name = one_line(&step.name());
    match step.outcome {
        StepOutcome::Passed => *out += &format!("    ok {n} - {name}\n"),
        StepOutcome::Skipped => {
            let reason = step.message.as_deref().unwrap_or("skipped");
            *out += &format!("    ok {n} - {name} # SKIP {}\n", one_line(reason));
        }
        StepOutcome::Failed | StepOutcome::Error | StepOutcome::Unfinished => {
            *out += &format!("    not ok {n} - {name}\n");
            let outcome = match step.outcome {
                StepOutcome::Failed => "failed",
                StepOutcome::Error => "error",
                _ => "unfinished",
            };
            let mut fields = vec![("outcome", yaml_str(outcome))];
            if let Some(m) = &step.message {
                fields.push(("message", yaml_str(m)));
            }
            if let Some(line) = step.at_line.filter(|l| *l > 0) {
                fields.push(("at", yaml_str(&format!("{}:{line}", lab.path))));
            }
            yaml_block(out, "      ", &fields, step.detail.as_deref());
        }
    }
}

/// A YAML diagnostic block at `indent`: `---`, the fields, an optional literal
/// `detail: |-` block, `...`.
fn yaml_block(out: &mut String, indent: &str, fields: &[(&str, String)], detail: Option<&str>) {
    *out += &format!("{indent}---\n");
    for (k, v) in fields {
        *out += &format!("{indent}{k}: {v}\n");
    }
    if let Some(detail) = detail.filter(|d| !d.trim().is_empty()) {
        *out += &format!("{indent}detail: |-\n");
        for line in detail.lines() {
            *out += &format!("{indent}  {}\n", line.trim_end());
        }
    }
    *out += &format!("{indent}...\n");
}

/// A YAML scalar: a JSON string is valid YAML.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A description on one line, without TAP's `#` directive marker.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ").replace('#', "\\#")
}
