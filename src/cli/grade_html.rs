//! `netlab grade --html FILE`: the class report as one self-contained page (inline
//! CSS, no script, nothing fetched): the score table with a ✓/✗ per task and each
//! task's pass rate, then each student's failed checks with the hint they were shown.
//!
//! Students' names (file stems) and messages are untrusted: every splice goes through
//! maud, which escapes it, and the page's Content-Security-Policy allows no script
//! and no fetch even if something slipped through.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::grade::Record;
use crate::engine::exercise::Exercise;
use crate::report::fmt_duration;

/// The page's file, opened before any grading so that a path that cannot be
/// written is reported at once (exit 2, as `netlab test --junit` does).
pub(crate) struct HtmlReport {
    path: PathBuf,
    file: std::fs::File,
}

impl HtmlReport {
    pub(crate) fn create(path: &Path) -> Result<HtmlReport, i32> {
        match std::fs::File::create(path) {
            Ok(file) => Ok(HtmlReport { path: path.to_path_buf(), file }),
            Err(e) => {
                eprintln!("netlab: --html {}: {e}", path.display());
                Err(2)
            }
        }
    }

    /// Writes the page; a failure is the machine's problem (exit 3).
    pub(crate) fn write(&self, exercise: &Exercise, source: &Path, records: &[Record]) -> Result<(), i32> {
        let heading = Heading {
            title: &exercise.title,
            summary: exercise.summary.as_deref(),
            source: &source.display().to_string(),
            tasks: exercise.tasks.iter().map(|t| (t.title.as_str(), t.points)).collect(),
        };
        let page = render(&heading, records, SystemTime::now());
        let mut file = &self.file;
        if let Err(e) = file.write_all(page.as_bytes()).and_then(|_| file.flush()) {
            eprintln!("netlab: cannot write the HTML report to {}: {e}", self.path.display());
            return Err(3);
        }
        Ok(())
    }
}

/// What the page says about the exercise.
pub(crate) struct Heading<'a> {
    pub title: &'a str,
    pub summary: Option<&'a str>,
    /// The exercise file as given on the command line.
    pub source: &'a str,
    /// Each task's title and points, in the exercise's order.
    pub tasks: Vec<(&'a str, i64)>,
}

const CSS: &str = r#"
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa;
  --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #cf222e; --fail-bg: #ffebe9;
  --warn: #9a6700; --warn-bg: #fff8c5; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "Noto Sans", sans-serif;
  color: var(--ink); background: #fff; }
header { background: var(--soft); border-bottom: 1px solid var(--line); padding: 20px 0 16px; }
.wrap { max-width: 1160px; margin: 0 auto; padding: 0 24px; }
.kicker { margin: 0; color: var(--muted); font-size: 13px; letter-spacing: .04em; text-transform: uppercase; }
h1 { margin: 2px 0 6px; font-size: 24px; line-height: 1.25; }
.summary { margin: 0 0 10px; max-width: 90ch; color: var(--ink); }
.meta { margin: 0; color: var(--muted); font-size: 13px; }
.meta b { color: var(--ink); font-weight: 600; }
h2 { font-size: 18px; margin: 24px 0 10px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 6px 10px; text-align: left; vertical-align: middle; }
thead th { background: var(--soft); font-size: 13px; color: var(--muted); font-weight: 600; white-space: nowrap; }
thead th.task { text-align: center; }
thead th small { display: block; font-weight: 400; }
tbody th { font-weight: 600; overflow-wrap: anywhere; }
tbody th a { color: var(--accent); text-decoration: none; }
td.num { text-align: right; white-space: nowrap; }
td.mark { text-align: center; white-space: nowrap; font-weight: 600; width: 64px; }
td.pass { color: var(--pass); background: var(--pass-bg); }
td.fail { color: var(--fail); background: var(--fail-bg); }
td.mark small { font-weight: 400; }
.outcome { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.outcome.graded { color: var(--pass); background: var(--pass-bg); }
.outcome.timeout { color: var(--warn); background: var(--warn-bg); }
.outcome.error { color: var(--fail); background: var(--fail-bg); }
.full { color: var(--pass); font-weight: 600; }
tfoot th, tfoot td { background: var(--soft); border-bottom: 0; border-top: 2px solid var(--line); font-size: 13px; }
td.rate { text-align: center; white-space: nowrap; }
.bar { height: 6px; background: var(--fail-bg); border-radius: 3px; margin-top: 3px; overflow: hidden; }
.bar span { display: block; height: 100%; background: var(--pass); }
ol.tasks { margin: 0; padding-left: 28px; }
ol.tasks li { margin: 2px 0; }
.pts { color: var(--muted); font-size: 13px; white-space: nowrap; }
article { border: 1px solid var(--line); border-radius: 6px; padding: 10px 16px; margin: 0 0 12px; }
article h3 { margin: 0 0 6px; font-size: 16px; overflow-wrap: anywhere; }
article h3 .pts { margin-left: 8px; }
article ol { margin: 6px 0 2px; padding-left: 28px; }
article li { margin: 0 0 8px; }
.task-title { font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 4px 0 0; }
dt { color: var(--muted); font-size: 13px; }
dd { margin: 0; overflow-wrap: anywhere; }
code, pre { font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 8px; margin: 6px 0;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.note { margin: 4px 0; color: var(--muted); }
.ok { margin: 4px 0; color: var(--pass); font-weight: 600; }
footer { color: var(--muted); font-size: 12px; padding: 16px 0 28px; }
"#;

/// The whole page. Students come sorted by name (as `--format json` has them).
pub(crate) fn render(heading: &Heading, records: &[Record], generated: SystemTime) -> String {
    let mut records: Vec<&Record> = records.iter().collect();
    records.sort_by(|a, b| a.name.cmp(&b.name));
    let max_points: i64 = heading.tasks.iter().map(|t| t.1).sum();
    let generated = humantime::format_rfc3339_seconds(generated).to_string();
    let students = records.len();
    let mean = if students == 0 { 0.0 } else { records.iter().map(|r| r.points as f64).sum::<f64>() / students as f64 };
    let full = records.iter().filter(|r| r.points == r.max_points && r.outcome != "error").count();
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'";
                meta name="generator" content=(concat!("netlab ", env!("CARGO_PKG_VERSION")));
                title { "Grades: " (heading.title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header { div.wrap {
                    p.kicker { "netlab grade" }
                    h1 { (heading.title) }
                    @if let Some(summary) = heading.summary { p.summary { (summary) } }
                    p.meta {
                        b { (students) } (if students == 1 { " student" } else { " students" })
                        " · mean " b { (format!("{mean:.1}")) "/" (max_points) } " points"
                        " · " b { (full) } " with full marks"
                        " · " code { (heading.source) }
                        " · generated " time datetime=(generated) { (generated.replace('T', " ")) }
                    }
                } }
                main.wrap {
                    h2 { "Scores" }
                    (scores(heading, &records))
                    h2 { "Tasks" }
                    ol.tasks {
                        @for (title, points) in &heading.tasks {
                            li { (title) " " span.pts { "(" (points) " pt)" } }
                        }
                    }
                    h2 { "Students" }
                    @for (i, r) in records.iter().enumerate() { (student(i, r, &heading.tasks)) }
                }
                footer.wrap { "Made by netlab grade. Hover a ✓ or ✗ for its check." }
            }
        }
    };
    page.into_string()
}

fn scores(heading: &Heading, records: &[&Record]) -> Markup {
    html! {
        table.scores {
            thead { tr {
                th scope="col" { "Student" }
                th scope="col" { "Points" }
                th scope="col" { "Outcome" }
                th scope="col" { "Duration" }
                @for (i, (title, points)) in heading.tasks.iter().enumerate() {
                    th.task scope="col" title=(title) { (i + 1) small { (points) " pt" } }
                }
            } }
            tbody {
                @for (i, r) in records.iter().enumerate() {
                    tr {
                        th scope="row" { a href=(format!("#student-{}", i + 1)) { (r.name) } }
                        td.num.full[r.points == r.max_points && r.outcome != "error"] {
                            (r.points) "/" (r.max_points)
                        }
                        td { span class=(format!("outcome {}", r.outcome)) { (r.outcome) } }
                        td.num { (fmt_duration(Duration::from_secs_f64(r.duration_s.max(0.0)))) }
                        @for t in &r.tasks {
                            @if t.passed {
                                td.mark.pass title="passed" { "✓ " small { (t.points) } }
                            } @else {
                                td.mark.fail title=(t.message.as_deref().unwrap_or("not passed")) {
                                    "✗ " small { (t.points) }
                                }
                            }
                        }
                    }
                }
            }
            tfoot { tr.rates {
                th scope="row" colspan="4" { "Passed by" }
                @for i in 0..heading.tasks.len() {
                    @let passed = records.iter().filter(|r| r.tasks.get(i).is_some_and(|t| t.passed)).count();
                    @let percent = if records.is_empty() { 0 } else { (200 * passed + records.len()) / (2 * records.len()) };
                    td.rate title=(format!("task {}: {passed} of {} students", i + 1, records.len())) {
                        (passed) "/" (records.len()) " · " (percent) "%"
                        div.bar { span style=(format!("width: {percent}%")) {} }
                    }
                }
            } }
        }
    }
}

/// A student's section: why the run was not graded, or each failed task with its
/// check and hint.
fn student(i: usize, r: &Record, tasks: &[(&str, i64)]) -> Markup {
    let failed: Vec<(usize, &crate::engine::exercise::TaskGrade)> =
        r.tasks.iter().enumerate().filter(|(_, t)| !t.passed).collect();
    html! {
        article.student id=(format!("student-{}", i + 1)) {
            h3 {
                (r.name)
                span.pts { (r.points) "/" (r.max_points) " points" }
                " " span class=(format!("outcome {}", r.outcome)) { (r.outcome) }
            }
            @match r.outcome {
                "error" => {
                    p.note { "Not graded, every task 0 points: the run did not get to the grading. What it said:" }
                    pre { (r.message.as_deref().unwrap_or("(nothing)")) }
                }
                "timeout" => {
                    p.note { "The solution was still running at --timeout: it was stopped, with every process it started, and its tasks were graded as they stood." }
                }
                _ => {}
            }
            @if let Some(code) = r.solution_exit.filter(|c| *c != 0) {
                p.note { "The solution exited with code " (code) "." }
            }
            @if r.outcome != "error" {
                @if failed.is_empty() {
                    p.ok { "✓ Every task passed." }
                } @else {
                    ol {
                        @for (n, t) in &failed {
                            li value=(n + 1) {
                                span.task-title { (t.title) }
                                " " span.pts { "(" (t.points) "/" (tasks.get(*n).map_or(t.max_points, |t| t.1)) " pt)" }
                                dl {
                                    @if t.error {
                                        dt { "Note" }
                                        dd { "this task itself went wrong: a mistake in the exercise, not the student's" }
                                    }
                                    dt { "Failed check" }
                                    dd { code { (t.message.as_deref().unwrap_or("(no message)")) } }
                                    @if let Some(hint) = &t.hint {
                                        dt { "Hint shown" }
                                        dd { (hint) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::exercise::TaskGrade;

    fn task(title: &str, points: i64, passed: bool, message: Option<&str>, hint: Option<&str>) -> TaskGrade {
        TaskGrade {
            title: title.into(),
            points: if passed { points } else { 0 },
            max_points: points,
            passed,
            message: message.map(Into::into),
            hints_reached: usize::from(hint.is_some()),
            hint: hint.map(Into::into),
            error: false,
        }
    }

    fn record(name: &str, outcome: &'static str, tasks: Vec<TaskGrade>, message: Option<&str>) -> Record {
        Record {
            name: name.into(),
            points: tasks.iter().map(|t| t.points).sum(),
            max_points: tasks.iter().map(|t| t.max_points).sum(),
            tasks,
            duration_s: 3.25,
            outcome,
            solution_exit: if outcome == "graded" { Some(0) } else { None },
            message: message.map(Into::into),
        }
    }

    fn heading() -> Heading<'static> {
        Heading {
            title: "NAT <for> \"everyone\"",
            summary: Some("Make <b>container4</b> & friends"),
            source: "labs/exercises/nat.rhai",
            tasks: vec![("one <i>", 1), ("two", 2)],
        }
    }

    fn class() -> Vec<Record> {
        vec![
            record(
                "zed",
                "graded",
                vec![
                    task("one <i>", 1, true, None, None),
                    task("two", 2, false, Some("curl said \"<script>alert(1)</script>\""), Some("try <nat> & see")),
                ],
                None,
            ),
            record(
                "<img src=x onerror=alert(1)>eve",
                "graded",
                vec![task("one <i>", 1, true, None, None), task("two", 2, true, None, None)],
                None,
            ),
            record(
                "bob",
                "error",
                vec![
                    task("one <i>", 1, false, Some("not graded"), None),
                    task("two", 2, false, Some("not graded"), None),
                ],
                Some("netlab run ended with exit code 3 before grading: <oops>"),
            ),
        ]
    }

    #[test]
    fn untrusted_text_is_escaped_everywhere() {
        let page = render(&heading(), &class(), SystemTime::UNIX_EPOCH);
        for raw in ["<script>", "<img", "<b>container4", "<nat>", "<oops>", "<for>", "<i>"] {
            assert!(!page.contains(raw), "{raw} left unescaped:\n{page}");
        }
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;eve"), "{page}");
        // In an attribute too: the hover title of the failed cell.
        assert!(page.contains(r#"title="curl said &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;""#), "{page}");
        assert!(page.contains("try &lt;nat&gt; &amp; see"), "{page}");
        assert!(page.contains("NAT &lt;for&gt; &quot;everyone&quot;") || page.contains("NAT &lt;for&gt; \"everyone\""));
        assert!(!page.contains("<script"), "{page}");
    }

    #[test]
    fn sorted_by_name_with_rates_and_outcomes() {
        let page = render(&heading(), &class(), SystemTime::UNIX_EPOCH);
        let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(at("&lt;img") < at(">bob<") && at(">bob<") < at(">zed<"), "sorted by name");
        assert!(page.contains("generated <time datetime=\"1970-01-01T00:00:00Z\">1970-01-01 00:00:00Z</time>"));
        // Task 1: passed by eve and zed, not bob (error); task 2 by eve only.
        assert!(page.contains("2/3 · 67%") && page.contains("width: 67%"), "{page}");
        assert!(page.contains("1/3 · 33%"), "{page}");
        assert!(page.contains("Not graded, every task 0 points"), "{page}");
        assert!(page.contains("exit code 3 before grading: &lt;oops&gt;"), "{page}");
        assert!(page.contains("✓ Every task passed."), "{page}");
        assert_eq!(page.matches("Failed check").count(), 1, "only zed's task 2: {page}");
        assert!(page.contains("<b>1</b> with full marks"), "{page}");
    }
}
