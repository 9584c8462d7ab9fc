//! Kernel feature probes against the real kernel, inside netlab's sandbox (root or
//! unprivileged user namespaces needed, like every lab run). Not a libtest harness:
//! entering the sandbox forks into a PID namespace and unshares namespaces, which
//! must happen before any thread exists, and libtest starts threads.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use netlab_runtime::model::Feature;
use netlab_runtime::{Lab, LabOptions};

const NAME: &str = "kernel_features";

/// The development VM (`uname -r`, `uname -v`), whose kernel's answers are known.
const DEV_VM: (&str, &str) = ("6.18.44-fc-v1045", "#1 SMP PREEMPT_DYNAMIC @0");
/// What the development VM's kernel has (its /proc/config.gz agrees); it lacks
/// every other feature.
const DEV_VM_HAS: [Feature; 10] = [
    Feature::Veth,
    Feature::Bridge,
    Feature::Macvlan,
    Feature::Vxlan,
    Feature::Tun,
    Feature::Tbf,
    Feature::Htb,
    Feature::Nftables,
    Feature::Ipv6,
    Feature::BrNetfilter,
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return ExitCode::SUCCESS;
    }
    if !selected(&args) {
        return ExitCode::SUCCESS;
    }
    let kernel = match nix::sys::utsname::uname() {
        Ok(u) => (u.release().to_string_lossy().into_owned(), u.version().to_string_lossy().into_owned()),
        Err(e) => return failed(format!("uname: {e}")),
    };
    if let Err(e) = netlab_runtime::enter_sandbox(&Default::default()) {
        return failed(format!("cannot enter netlab's sandbox: {e}"));
    }
    match run(&kernel) {
        Ok(()) => {
            println!("test {NAME} ... ok");
            ExitCode::SUCCESS
        }
        Err(problems) => failed(problems),
    }
}

/// Whether libtest's filters (`cargo test -- NAME`, `--skip NAME`) leave this test in.
fn selected(args: &[String]) -> bool {
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--skip" {
            skips.extend(args.next());
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    (filters.is_empty() || filters.iter().any(|f| NAME.contains(f.as_str())))
        && !skips.iter().any(|s| NAME.contains(s.as_str()))
}

fn failed(why: String) -> ExitCode {
    eprintln!("test {NAME} ... FAILED\n{why}");
    ExitCode::FAILURE
}

fn run(kernel: &(String, String)) -> Result<(), String> {
    let lab = Lab::new(LabOptions::default()).map_err(|e| format!("Lab::new: {e}"))?;
    let mut problems = Vec::new();
    let mut answers = Vec::new();
    let fds_before = open_fds();
    let host_before = host_links(&lab);
    println!("kernel {} {}", kernel.0, kernel.1);
    for feature in Feature::ALL {
        let started = Instant::now();
        let answer = lab.has_feature(feature);
        let took = started.elapsed();
        match &answer {
            Ok(true) => println!("  {feature:22} present  {:>6.2} ms", ms(took)),
            Ok(false) => println!("  {feature:22} absent   {:>6.2} ms  ({})", ms(took), feature.absent_reason()),
            Err(e) => problems.push(format!("{feature}: the probe failed: {e}")),
        }
        answers.push((feature, answer.ok()));
    }

    // Asked again, each answer comes from the lab's memory, not from a new probe.
    let started = Instant::now();
    for &(feature, first) in &answers {
        let again = lab.has_feature(feature).ok();
        if again != first {
            problems.push(format!("{feature}: {first:?} first, {again:?} when asked again"));
        }
    }
    let cached = started.elapsed();
    println!("  all {} asked again: {:.3} ms", answers.len(), ms(cached));
    if cached > Duration::from_millis(10) {
        problems.push(format!("asking again took {cached:?}: probed again instead of remembered"));
    }

    let expected: Vec<(Feature, bool)> = if (kernel.0.as_str(), kernel.1.as_str()) == DEV_VM {
        Feature::ALL.iter().map(|&f| (f, DEV_VM_HAS.contains(&f))).collect()
    } else {
        // Another kernel: netlab itself needs these; the rest only has to answer.
        println!("  not the development VM's kernel: checking veth and bridge only");
        vec![(Feature::Veth, true), (Feature::Bridge, true)]
    };
    for (feature, present) in expected {
        let answer = answers.iter().find(|(f, _)| *f == feature).and_then(|(_, a)| *a);
        if answer.is_some_and(|a| a != present) {
            problems.push(format!("{feature}: {} here, expected {}", word(!present), word(present)));
        }
    }

    // Probes leave nothing: no descriptor stays open (a namespace handle, a netlink
    // socket or a tun file would keep a scratch namespace alive), the lab's host
    // has the links it had, and no node exists. A module a probe loaded may add
    // its fallback tunnels to every namespace (ip_gre's gre0): the kernel's doing.
    let fds_after = open_fds();
    if fds_after != fds_before {
        problems.push(format!("open descriptors: {fds_before:?} before probing, {fds_after:?} after"));
    }
    match (host_before, host_links(&lab)) {
        (Ok(before), Ok(after)) => {
            let new: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
            if new.iter().any(|l| !FALLBACK_TUNNELS.contains(&l.as_str())) || before.iter().any(|l| !after.contains(l))
            {
                problems.push(format!("the lab's host had links {before:?} before probing, {after:?} after"));
            }
        }
        (Err(e), _) | (_, Err(e)) => problems.push(format!("listing the host's links: {e}")),
    }
    match std::fs::read_dir("/run/netns").map(|d| d.count()) {
        Ok(0) => {}
        Ok(n) => problems.push(format!("{n} named namespaces under /run/netns after probing")),
        Err(e) => problems.push(format!("reading /run/netns: {e}")),
    }
    lab.teardown();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Devices that loading a tunnel module adds to every network namespace.
const FALLBACK_TUNNELS: [&str; 9] =
    ["gre0", "gretap0", "erspan0", "tunl0", "sit0", "ip6tnl0", "ip6gre0", "ip_vti0", "ip6_vti0"];

fn host_links(lab: &Lab) -> Result<Vec<String>, String> {
    let links = lab.block_on(lab.host().links()).map_err(|e| e.to_string())?;
    Ok(links.into_iter().map(|l| l.name).collect())
}

/// The process's open file descriptors, as /proc shows them.
fn open_fds() -> Result<Vec<String>, String> {
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| e.to_string())?;
    let mut fds: Vec<String> = dir
        .filter_map(|entry| entry.ok())
        .map(|entry| {
            let target = std::fs::read_link(entry.path()).map(|t| t.display().to_string()).unwrap_or_default();
            format!("{} -> {target}", entry.file_name().to_string_lossy())
        })
        .collect();
    fds.sort();
    Ok(fds)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn word(present: bool) -> &'static str {
    if present {
        "present"
    } else {
        "absent"
    }
}
