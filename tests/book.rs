//! The book (book/) stays in step with the code: every lab has a chapter that includes
//! it and is listed in SUMMARY.md, every `{{#include}}` resolves, the function
//! reference is exactly what the binary prints, and every example lab in the book runs
//! with the result the book describes.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{netlab, root, run_lab};

const MARKER: &str = "<!-- generated: netlab functions --markdown -->";

fn book_src() -> PathBuf {
    root().join("book").join("src")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Files directly in `dir` whose name ends with `.ext`, sorted.
fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    found
}

/// Every .md file under `dir`, recursively, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            found.extend(markdown_files(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The lab names (file stems) in labs/, then labs/more/ ("more/uplinks"): a lab's
/// chapter is book/src/labs/NAME.md.
fn lab_names() -> Vec<String> {
    let mut names: Vec<String> = files_with_ext(&root().join("labs"), "rhai").iter().map(|p| stem(p)).collect();
    names.extend(files_with_ext(&root().join("labs/more"), "rhai").iter().map(|p| format!("more/{}", stem(p))));
    assert!(!names.is_empty(), "labs/ has no .rhai files");
    names
}

/// The targets of mdBook's file-including links in `text` (`{{#include path}}`,
/// `{{#include path:anchor}}`, `{{#rustdoc_include ...}}`, `{{#playground ...}}`),
/// without the `:anchor` or `:lines` part. Escaped links (`\{{#include ...}}`) are
/// not links.
fn include_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{#") {
        let escaped = rest[..start].ends_with('\\');
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else {
            panic!("unterminated {{{{# link: {:?}", &rest[start..]);
        };
        let link = after[..end].trim();
        rest = &after[end + 2..];
        if escaped {
            continue;
        }
        let mut words = link.split_whitespace();
        let kind = words.next().unwrap_or("");
        if matches!(kind, "include" | "rustdoc_include" | "playground") {
            let arg = words.next().unwrap_or_else(|| panic!("{{{{#{link}}}}} has no path"));
            targets.push(arg.split(':').next().unwrap().to_string());
        }
    }
    targets
}

/// (a) Every labs/<name>.rhai has a chapter book/src/labs/<name>.md that includes the
/// lab inside a ```rhai block, shows the lab's graph, and is listed in SUMMARY.md.
#[test]
fn every_lab_has_a_chapter() {
    let summary = read(&book_src().join("SUMMARY.md"));
    let mut problems = Vec::new();
    for name in lab_names() {
        let chapter = book_src().join("labs").join(format!("{name}.md"));
        if !chapter.exists() {
            problems.push(format!("labs/{name}.rhai has no chapter book/src/labs/{name}.md"));
            continue;
        }
        let text = read(&chapter);
        // From book/src/labs/ (or book/src/labs/more/) up to the repository's root.
        let up = "../".repeat(3 + name.matches('/').count());
        let include = format!("{{{{#include {up}labs/{name}.rhai}}}}");
        let lines: Vec<&str> = text.lines().collect();
        match lines.iter().position(|l| l.trim() == include) {
            None => problems.push(format!("book/src/labs/{name}.md lacks the line {include}")),
            Some(i) => {
                let fenced =
                    i >= 1 && lines[i - 1].trim() == "```rhai" && lines.get(i + 1).is_some_and(|l| l.trim() == "```");
                if !fenced {
                    problems.push(format!("book/src/labs/{name}.md: {include} must be alone in a ```rhai block"));
                }
            }
        }
        if !summary.contains(&format!("(labs/{name}.md)")) {
            problems.push(format!("SUMMARY.md does not list labs/{name}.md"));
        }
        // The drawing book/generate-graphs.sh makes from `netlab graph` when the book is built.
        let graph = format!("{}graphs/{name}.svg", "../".repeat(1 + name.matches('/').count()));
        if !text.contains(&format!("]({graph})")) {
            problems.push(format!("book/src/labs/{name}.md does not show its graph {graph}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A lab chapter shows its lab only by including it: no ```rhai block in
/// book/src/labs/ holds anything but the include line, so the text cannot drift.
#[test]
fn lab_chapters_never_copy_lab_text() {
    let mut problems = Vec::new();
    for chapter in markdown_files(&book_src().join("labs")) {
        let text = read(&chapter);
        let mut in_rhai = false;
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if !in_rhai && t == "```rhai" {
                in_rhai = true;
            } else if in_rhai && t == "```" {
                in_rhai = false;
            } else if in_rhai && !(t.starts_with("{{#include ") && t.ends_with("}}")) {
                problems.push(format!("{}:{}: {line}", chapter.display(), n + 1));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "rhai code in a lab chapter must be an {{{{#include}}}} of the lab:\n{}",
        problems.join("\n")
    );
}

/// Every .md file in the book is in SUMMARY.md, and everything SUMMARY.md links exists.
#[test]
fn summary_lists_exactly_the_chapters() {
    let src = book_src();
    let summary = read(&src.join("SUMMARY.md"));
    let mut linked = BTreeSet::new();
    let mut rest = summary.as_str();
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')').expect("a closing parenthesis in SUMMARY.md");
        linked.insert(after[..end].to_string());
        rest = &after[end..];
    }
    let mut problems = Vec::new();
    for link in &linked {
        if !src.join(link).is_file() {
            problems.push(format!("SUMMARY.md links {link}, which does not exist"));
        }
    }
    for file in markdown_files(&src) {
        let rel = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        if rel != "SUMMARY.md" && !linked.contains(&rel) {
            problems.push(format!("book/src/{rel} is not listed in SUMMARY.md"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// (b) Every {{#include ...}} in the book points to an existing file.
#[test]
fn every_include_resolves() {
    let mut checked = 0;
    let mut missing = Vec::new();
    for page in markdown_files(&book_src()) {
        let dir = page.parent().unwrap();
        for target in include_targets(&read(&page)) {
            checked += 1;
            if !dir.join(&target).is_file() {
                missing.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(checked > 0, "no {{{{#include}}}} found in the book");
    assert!(missing.is_empty(), "includes that point to no file:\n{}", missing.join("\n"));
}

fn functions_markdown() -> String {
    let out = netlab().args(["functions", "--markdown"]).output().expect("netlab runs");
    assert!(out.status.success(), "netlab functions --markdown failed");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// reference.md split at the marker line: (header including the marker line, the
/// generated part after the blank line that follows it).
fn split_reference(text: &str) -> (String, String) {
    let with_newline = format!("{MARKER}\n");
    assert_eq!(
        text.matches(&with_newline).count(),
        1,
        "book/src/reference.md must contain the line {MARKER} exactly once"
    );
    let at = text.find(&with_newline).unwrap() + with_newline.len();
    let generated = text[at..].strip_prefix('\n').expect("a blank line after the marker in book/src/reference.md");
    (text[..at].to_string(), generated.to_string())
}

/// (c) The generated part of reference.md is the current `netlab functions --markdown`.
#[test]
fn reference_matches_the_binary() {
    let text = read(&book_src().join("reference.md"));
    let (_, generated) = split_reference(&text);
    assert!(
        generated == functions_markdown(),
        "book/src/reference.md is stale: run `cargo build && book/generate-reference.sh target/debug/netlab`"
    );
}

/// book/generate-reference.sh keeps the header and writes exactly the binary's output
/// after the marker (run on a copy, so the real book is not touched).
#[test]
fn generate_reference_script_writes_the_reference() {
    let tmp = std::env::temp_dir().join(format!("netlab-book-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(tmp.join("book").join("src")).expect("temp dir");
    let script = tmp.join("book").join("generate-reference.sh");
    fs::copy(root().join("book").join("generate-reference.sh"), &script).expect("copy script");
    let original = read(&book_src().join("reference.md"));
    let (header, _) = split_reference(&original);
    let copy = tmp.join("book").join("src").join("reference.md");
    fs::write(&copy, format!("{header}\nstale text\n")).expect("write copy");

    let status = Command::new("bash").arg(&script).arg(env!("CARGO_BIN_EXE_netlab")).status().expect("bash runs");
    assert!(status.success(), "generate-reference.sh failed");
    let written = read(&copy);
    let _ = fs::remove_dir_all(&tmp);
    assert_eq!(written, format!("{header}\n{}", functions_markdown()));
}

/// Every example lab in book/src/examples/ is shown in the book and runs as the book
/// says: `fail_*.rhai` fails a check (exit 1), every other one passes (exit 0).
#[test]
fn book_examples_run() {
    let examples = files_with_ext(&book_src().join("examples"), "rhai");
    assert!(!examples.is_empty(), "book/src/examples/ has no labs");
    let all_text: String = markdown_files(&book_src()).iter().map(|p| read(p)).collect();
    for path in examples {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            all_text.contains(&format!("{{{{#include examples/{name}}}}}")),
            "book/src/examples/{name} is not included in any chapter"
        );
        let (code, out, err) = run_lab(&path, &[]);
        if name.starts_with("fail_") {
            assert_eq!(code, 1, "{name} must fail a check\n{out}\n{err}");
            assert!(err.contains("netlab::check_failed"), "{name}:\n{err}");
            // The book quotes this diagnostic: its help line must still be what
            // netlab prints.
            let help = err
                .lines()
                .find(|l| l.trim_start().starts_with("help:"))
                .unwrap_or_else(|| panic!("{name}: no help line in\n{err}"));
            assert!(all_text.contains(help.trim()), "the book no longer shows netlab's help line {help:?} for {name}");
        } else {
            assert_eq!(code, 0, "{name} failed:\n{out}\n{err}");
            assert!(out.lines().last().unwrap_or("").starts_with("PASS "), "{name}:\n{out}");
        }
    }
}

/// (e) Every lab chapter has a `## Claims` table: the tutorial's sentence, the check
/// that proves it (`labs/FILE.rhai:LINE`, a line that calls a check) and its polarity
/// (a positive claim is never checked by an expect_no_* call).
#[test]
fn claims_tables_point_at_checks() {
    let mut problems = Vec::new();
    for name in lab_names() {
        let chapter = book_src().join("labs").join(format!("{name}.md"));
        let Ok(text) = fs::read_to_string(&chapter) else { continue };
        let Some(at) = text.find("\n## Claims") else {
            problems.push(format!("book/src/labs/{name}.md has no \"## Claims\" section"));
            continue;
        };
        let section = &text[at + 1..];
        let section = section[3..].find("\n## ").map(|e| &section[..e + 3]).unwrap_or(section);
        let mut rows = 0;
        for row in section.lines().filter(|l| l.starts_with('|') && l.contains("labs/")) {
            // A `\|` inside a cell is a pipe of the quoted command, not a column.
            let row = row.replace("\\|", "¦");
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(|c| c.trim()).collect();
            let (Some(reference), Some(polarity)) = (cells.get(1), cells.get(2)) else {
                problems.push(format!("{name}.md: a claims row needs 3 cells: {row}"));
                continue;
            };
            rows += 1;
            for r in reference.split(',').map(|r| r.trim().trim_matches('`')) {
                let Some((file, line)) = r.rsplit_once(':') else {
                    problems.push(format!("{name}.md: {r:?} is not labs/FILE.rhai:LINE"));
                    continue;
                };
                let lab = fs::read_to_string(root().join(file)).unwrap_or_default();
                let code = line
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| lab.lines().nth(n.wrapping_sub(1)))
                    .map(|l| l.split(" //").next().unwrap_or(""))
                    .unwrap_or("");
                if !code.contains("expect") && !code.contains("wait_until(") {
                    problems.push(format!("{name}.md: {r} is not a check line: {code:?}"));
                } else if *polarity == "positive" && code.contains("expect_no_") {
                    problems.push(format!("{name}.md: {r} is marked positive but is a negative check"));
                } else if *polarity != "positive" && *polarity != "negative" {
                    problems.push(format!("{name}.md: polarity is positive or negative, not {polarity:?}"));
                }
            }
        }
        if rows == 0 {
            problems.push(format!("book/src/labs/{name}.md: the claims table has no rows"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
