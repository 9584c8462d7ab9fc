//! Proof markers: how a lab shows that each of its checks can fail.
//!
//! - `STMT;   // break: TAG[, TAG]` — a load-bearing line. Without every line of TAG
//!   the lab must fail at a check marked `// needs: TAG`.
//! - `CHECK;  // needs: TAG[, TAG]` — a positive check that depends on TAG.
//! - `CHECK;  // fix: STMT` — a negative check: with STMT (the tutorial's fix) run
//!   just before it, this very check must fail. `fix:` is the last marker on a line.
//!
//! This module only reads markers and makes the mutated lab texts; `netlab prove`
//! runs them.

use std::collections::BTreeSet;

/// One way to show a check can fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Case {
    /// Remove every line tagged `break: tag`.
    Break { tag: String },
    /// Insert `stmt` before line `line` (1-based), whose check must then fail.
    Fix { line: usize, stmt: String },
}

impl Case {
    pub fn describe(&self) -> String {
        match self {
            Case::Break { tag } => format!("break {tag}"),
            Case::Fix { line, stmt } => format!("fix before line {line}: {stmt}"),
        }
    }
}

/// The markers of one line.
#[derive(Debug, Default, Clone, PartialEq)]
struct Markers {
    breaks: Vec<String>,
    needs: Vec<String>,
    fix: Option<String>,
}

/// A lab's markers: the cases to run and the mistakes in them.
#[derive(Debug, Default)]
pub struct Proofs {
    pub cases: Vec<Case>,
    /// (line, problem): marker mistakes, e.g. a negative check without a fix.
    pub problems: Vec<(usize, String)>,
    lines: Vec<Markers>,
}

/// The part of a line before its first comment (`//` outside a string literal).
pub fn code_part(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == b'\\' && q != b'`' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'`' || b == b'\'' => quote = Some(b),
            None if b == b'/' && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            None => {}
        }
        i += 1;
    }
    line
}

fn is_tag(t: &str) -> bool {
    !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The tags after `marker` up to the next `//` (or the line's end).
fn tags_after(comment: &str, marker: &str) -> Option<Result<Vec<String>, String>> {
    let at = comment.find(marker)?;
    let rest = &comment[at + marker.len()..];
    let rest = rest.find("//").map(|e| &rest[..e]).unwrap_or(rest);
    let tags: Vec<String> = rest.split(',').map(|t| t.trim().to_string()).collect();
    Some(match tags.iter().find(|t| !is_tag(t)) {
        Some(bad) => Err(format!("{marker:?} takes tags made of letters, digits, - and _ (got {bad:?})")),
        None => Ok(tags),
    })
}

fn markers(line: &str) -> Result<Markers, String> {
    let code = code_part(line);
    let comment = &line[code.len()..];
    let mut m = Markers::default();
    if let Some(tags) = tags_after(comment, "// break:") {
        m.breaks = tags?;
    }
    if let Some(tags) = tags_after(comment, "// needs:") {
        m.needs = tags?;
    }
    if let Some(at) = comment.find("// fix:") {
        let stmt = comment[at + "// fix:".len()..].trim();
        if stmt.is_empty() {
            return Err("\"// fix:\" needs the statement that makes this check fail".into());
        }
        m.fix = Some(stmt.to_string());
    }
    Ok(m)
}

/// Whether the code calls a check (expect..., or wait_until, which fails like one
/// when its condition never holds), and whether it is a negative one.
fn check_kind(code: &str) -> Option<bool> {
    if code.contains("expect_no_") {
        Some(true)
    } else if code.contains("expect") || code.contains("wait_until(") {
        Some(false)
    } else {
        None
    }
}

impl Proofs {
    pub fn read(text: &str) -> Proofs {
        let mut p = Proofs::default();
        let (mut broken, mut needed) = (BTreeSet::new(), BTreeSet::new());
        for (i, line) in text.lines().enumerate() {
            let no = i + 1;
            let m = match markers(line) {
                Ok(m) => m,
                Err(e) => {
                    p.problems.push((no, e));
                    p.lines.push(Markers::default());
                    continue;
                }
            };
            let kind = check_kind(code_part(line));
            if let Some(stmt) = &m.fix {
                if kind.is_none() {
                    p.problems.push((no, "\"// fix:\" belongs on a check line (expect...)".into()));
                } else {
                    p.cases.push(Case::Fix { line: no, stmt: stmt.clone() });
                }
            } else if kind == Some(true) {
                p.problems.push((
                    no,
                    "a negative check without \"// fix: STMT\": add the statement that connects the network, \
                     so `netlab prove` shows this check can fail"
                        .into(),
                ));
            }
            if !m.needs.is_empty() && kind.is_none() {
                p.problems.push((no, "\"// needs:\" belongs on a check line (expect...)".into()));
            }
            broken.extend(m.breaks.iter().cloned());
            needed.extend(m.needs.iter().cloned());
            p.lines.push(m);
        }
        for tag in broken.difference(&needed) {
            p.problems.push((0, format!("\"// break: {tag}\" has no check marked \"// needs: {tag}\"")));
        }
        for tag in needed.difference(&broken) {
            p.problems.push((0, format!("\"// needs: {tag}\" has no line marked \"// break: {tag}\"")));
        }
        for tag in broken.intersection(&needed) {
            p.cases.push(Case::Break { tag: tag.clone() });
        }
        p.cases.sort_by_key(|c| match c {
            Case::Break { .. } => 0,
            Case::Fix { line, .. } => *line,
        });
        p
    }

    /// The lab text for a case, and for each of its lines the original line number
    /// (0 for an inserted line).
    pub fn mutate(text: &str, case: &Case) -> (String, Vec<usize>) {
        let mut out = String::new();
        let mut origin = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let no = i + 1;
            match case {
                Case::Break { tag } => {
                    if markers(line).is_ok_and(|m| m.breaks.contains(tag)) {
                        continue;
                    }
                }
                Case::Fix { line: at, stmt } if *at == no => {
                    let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
                    out += &format!("{indent}{stmt}\n");
                    origin.push(0);
                }
                Case::Fix { .. } => {}
            }
            out += line;
            out.push('\n');
            origin.push(no);
        }
        (out, origin)
    }

    /// Whether a failure at original line `line` is the one `case` expects.
    pub fn expected_failure(&self, case: &Case, line: usize) -> bool {
        match case {
            Case::Break { tag } => line > 0 && self.lines.get(line - 1).is_some_and(|m| m.needs.contains(tag)),
            Case::Fix { line: at, .. } => *at == line,
        }
    }

    /// The lines a break case should fail at.
    pub fn needing(&self, tag: &str) -> Vec<usize> {
        self.lines.iter().enumerate().filter(|(_, m)| m.needs.iter().any(|t| t == tag)).map(|(i, _)| i + 1).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = r#"let a = netns("a");
up(a, "x");   // ip link set x up   // break: up
expect_ping(a, "10.0.0.2");   // needs: up, addr
addr(a, "x", "10.0.0.1/24");   // break: addr
expect_no_ping(a, "10.0.0.3");   // ping -> loss   // fix: up(b, "y");
expect_no_http(a, "http://x/");
"#;

    #[test]
    fn reads_cases_and_problems() {
        let p = Proofs::read(LAB);
        assert_eq!(
            p.cases,
            vec![
                Case::Break { tag: "addr".into() },
                Case::Break { tag: "up".into() },
                Case::Fix { line: 5, stmt: "up(b, \"y\");".into() }
            ]
        );
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert_eq!(p.problems[0].0, 6);
        assert_eq!(p.needing("up"), vec![3]);
        assert!(p.expected_failure(&p.cases[1], 3));
        assert!(!p.expected_failure(&p.cases[1], 5));
    }

    #[test]
    fn tags_are_whole_words() {
        let p = Proofs::read("x();   // break: upx\nexpect(1 == 1, \"a\");   // needs: up\n");
        assert!(p.cases.is_empty());
        assert_eq!(p.problems.len(), 2, "{:?}", p.problems);
        let bad = Proofs::read("x();   // break: up x\n");
        assert!(bad.problems[0].1.contains("letters"), "{:?}", bad.problems);
    }

    #[test]
    fn urls_are_not_comments() {
        assert_eq!(code_part(r#"expect_http(a, "http://x/");   // c"#), r#"expect_http(a, "http://x/");   "#);
        assert_eq!(code_part("f(`a//b`); // c"), "f(`a//b`); ");
        let p = Proofs::read("curl(a, \"http://x/\");   // break: web\nexpect(true, \"y\");   // needs: web\n");
        assert_eq!(p.cases, vec![Case::Break { tag: "web".into() }]);
    }

    #[test]
    fn mutations() {
        let p = Proofs::read(LAB);
        let (text, origin) = Proofs::mutate(LAB, &p.cases[1]);
        assert!(!text.contains("break: up"));
        assert_eq!(origin[1], 3);
        let (text, origin) = Proofs::mutate(LAB, &p.cases[2]);
        assert_eq!(text.lines().nth(4), Some("up(b, \"y\");"));
        assert_eq!((origin[4], origin[5]), (0, 5));
    }
}
