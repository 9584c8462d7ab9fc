//! `netlab grade --html FILE`: the class report of the NAT exercise, opened in
//! headless Chromium: its rendered DOM has every student, score, pass rate, failed
//! check and hint, a student named with markup shows as text, and the screenshot is
//! a real, non-blank PNG (kept as target/grade-report.png). Chromium is required:
//! .ci/install-deps installs Debian's `chromium`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{decode, machine_state, netlab, root};

/// A student named with markup: the file name is untrusted input.
const EVE: &str = "<img src=x onerror=alert(1)>eve";
const EVE_ESCAPED: &str = "&lt;img src=x onerror=alert(1)&gt;eve";

fn exercise() -> PathBuf {
    root().join("labs/exercises/nat.rhai")
}

fn solutions() -> PathBuf {
    root().join("labs/exercises/nat/solutions")
}

/// A folder of its own for this test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netlab-grade-html-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn chromium() -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: the --html page is tested in headless Chromium \
                 (Debian: apt-get install chromium; .ci/install-deps installs it)"
            )
        })
}

/// Headless Chromium on a local file, nothing fetched, a profile of its own; killed
/// after 120 s (GNU timeout) rather than hanging the test.
fn headless(chromium: &Path, page: &Path, profile: &Path, mode: &str) -> String {
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(mode)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    let (code, out, err) = decode(out);
    assert_eq!(code, 0, "chromium {mode} failed:\n{out}\n{err}");
    out
}

/// (width, height, pixels as RGBA) of a PNG.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 4]>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8() | png::Transformations::ALPHA);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
    let frame = reader.next_frame(&mut buf).expect("PNG pixels");
    assert_eq!(frame.color_type, png::ColorType::Rgba, "normalised to RGBA");
    let pixels = buf[..frame.buffer_size()].chunks_exact(4).map(|p| [p[0], p[1], p[2], p[3]]).collect();
    (frame.width, frame.height, pixels)
}

#[test]
fn the_class_report_renders_in_chromium() {
    // First, so that a machine without it fails at once.
    let chromium = chromium();
    let dir = scratch("class");
    let class = dir.join("class");
    std::fs::create_dir_all(&class).expect("class folder");
    for s in ["reference", "no_masquerade"] {
        std::fs::copy(solutions().join(format!("{s}.sh")), class.join(format!("{s}.sh"))).expect("copy");
    }
    std::fs::copy(solutions().join("reference.sh"), class.join(format!("{EVE}.sh"))).expect("a name with markup");
    // Task 1 done, then hangs: stopped at --timeout and graded as it stands.
    std::fs::write(
        class.join("sleeper.sh"),
        "ip netns add container4\nip link add br0 type bridge\nip link add brid4 type veth peer name veth4\n\
         ip link set veth4 netns container4\nip link set brid4 master br0\nsleep 1000\n",
    )
    .expect("write");
    let page = dir.join("report.html");
    let before = machine_state();
    let out = netlab()
        .arg("grade")
        .arg(exercise())
        .arg("--solution")
        .arg(&class)
        .args(["--format", "json", "--timeout", "8", "--html"])
        .arg(&page)
        .output()
        .expect("runs");
    let (code, out, err) = decode(out);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(before, machine_state(), "grading changed the machine");
    // stdout is --format's alone.
    let records: serde_json::Value = serde_json::from_str(&out).expect("only JSON on stdout");
    let names: Vec<&str> =
        records.as_array().expect("array").iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(names, [EVE, "no_masquerade", "reference", "sleeper"], "{out}");
    let outcomes: Vec<&str> =
        records.as_array().expect("array").iter().map(|r| r["outcome"].as_str().expect("o")).collect();
    assert_eq!(outcomes, ["graded", "graded", "graded", "timeout"], "{out}");

    let html = std::fs::read_to_string(&page).expect("the page was written");
    // Self-contained: no script, nothing to fetch.
    for tag in ["<script", "<link", "<img", "@import", "url("] {
        assert!(!html.contains(tag), "{tag} in the page:\n{html}");
    }
    let target = root().join("target");
    std::fs::copy(&page, target.join("grade-report.html")).expect("keep the page");

    let profile = dir.join("profile");
    let dom = headless(&chromium, &page, &profile, "--dump-dom");
    // The name with markup is text, not an element.
    assert!(!dom.contains("<img"), "the student's name became an element:\n{dom}");
    assert_eq!(dom.matches(EVE_ESCAPED).count(), 2, "in the table and in its section:\n{dom}");
    for name in ["no_masquerade", "reference", "sleeper"] {
        assert!(dom.contains(&format!("{name}</a>")), "{name} in the table:\n{dom}");
    }
    assert!(dom.contains("NAT: container4 reaches the internet through the host"), "{dom}");
    assert!(dom.contains("<b>4</b> students"), "{dom}");
    for (name, points) in [(EVE_ESCAPED, "5/5"), ("no_masquerade", "3/5"), ("reference", "5/5"), ("sleeper", "1/5")] {
        let row = dom.split("<tr>").find(|r| r.contains(&format!("{name}</a>"))).expect("a row");
        assert!(row.contains(&format!(">{points}</td>")), "{name} {points}: {row}");
    }
    // The pass-rate row: task 1 by everyone, task 2 not by the sleeper, MASQUERADE by
    // the reference and eve only.
    let rates = dom.split("<tr class=\"rates\">").nth(1).expect("the pass-rate row");
    let rates: Vec<&str> = rates.split("<td class=\"rate\"").skip(1).collect();
    assert_eq!(rates.len(), 4, "a rate per task");
    assert!(rates[0].contains("4/4 · 100%") && rates[0].contains("width: 100%"), "{}", rates[0]);
    assert!(rates[1].contains("3/4 · 75%"), "{}", rates[1]);
    assert!(rates[3].contains("2/4 · 50%") && rates[3].contains("width: 50%"), "{}", rates[3]);
    // The failed check on hover and in the student's section, with the hint shown.
    assert!(dom.contains("title=\"container4 curl http://203.0.113.10/"), "the ✗ cell's title:\n{dom}");
    let section = dom.split("<article").skip(1).find(|a| a.contains("no_masquerade")).expect("no_masquerade's section");
    assert!(section.contains("Failed check") && section.contains("container4 curl http://203.0.113.10/"), "{section}");
    assert!(section.contains("iptables -t nat -A POSTROUTING -s 10.201.0.0/24 -j MASQUERADE"), "the hint: {section}");
    let section = dom.split("<article").skip(1).find(|a| a.contains("sleeper")).expect("the sleeper's section");
    assert!(section.contains("still running at --timeout"), "{section}");
    assert!(section.contains("the host's bridge has an IPv4 address"), "task 2's check: {section}");
    let section = dom.split("<article").skip(1).find(|a| a.contains(">reference<")).expect("the reference's section");
    assert!(section.contains("Every task passed") && !section.contains("Failed check"), "{section}");

    let shot = target.join("grade-report.png");
    let _ = std::fs::remove_file(&shot);
    headless(&chromium, &page, &profile, &format!("--screenshot={}", shot.display()));
    let (width, height, pixels) = decode_png(&shot);
    assert_eq!((width, height), (1280, 900), "{}", shot.display());
    let mut colours: Vec<[u8; 4]> = pixels.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 16, "a blank page: {} colours in {}", colours.len(), shot.display());
    // The inline CSS was applied: the ✓ cells' green (--pass-bg, #dafbe1) fills a
    // good part of the table.
    let green = pixels.iter().filter(|p| p[..3] == [0xda, 0xfb, 0xe1]).count();
    assert!(green > 20_000, "{green} pixels of the ✓ cells' green in {}", shot.display());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_path_that_cannot_be_written_is_reported_before_grading() {
    let dir = scratch("unwritable");
    let reference = solutions().join("reference.sh");
    for (path, says) in
        [(dir.join("no/such/folder/report.html"), "No such file or directory"), (dir.clone(), "Is a directory")]
    {
        let started = std::time::Instant::now();
        let out =
            netlab().arg("grade").arg(exercise()).arg("--solution").arg(&reference).arg("--html").arg(&path).output();
        let (code, out, err) = decode(out.expect("runs"));
        assert_eq!(code, 2, "{out}\n{err}");
        assert!(err.contains(&format!("netlab: --html {}: {says}", path.display())), "{err}");
        assert!(out.is_empty(), "nothing graded: {out}");
        assert!(started.elapsed().as_secs() < 20, "graded first: {:?}", started.elapsed());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_write_is_exit_3() {
    if !Path::new("/dev/full").exists() {
        panic!("/dev/full is missing: the test writes the page there to see the write fail");
    }
    let out = netlab()
        .arg("grade")
        .arg(exercise())
        .arg("--solution")
        .arg(solutions().join("reference.sh"))
        .args(["--format", "csv", "--html", "/dev/full"])
        .output()
        .expect("runs");
    let (code, out, err) = decode(out);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("netlab: cannot write the HTML report to /dev/full: No space left on device"), "{err}");
    // What --format prints is printed all the same.
    assert!(out.lines().nth(1).is_some_and(|l| l.starts_with("reference,5,5,graded")), "{out}");
}
