//! `--kernel IMAGE`: `netlab run` and `netlab test` inside a small VM booted with
//! another kernel and this machine's own root file system, through virtme-ng (`vng`)
//! on QEMU — KVM where it works, software emulation (TCG) otherwise.
//!
//! Inside, netlab runs itself: the same binary, the same arguments without
//! `--kernel`, so the output and exit code are those of a native run. The guest sees
//! the machine's root read-only (virtme-ng's default: 9p, read-only, with tmpfs
//! overlays on /etc, /usr, /var, /tmp, ...) and has no network device (`-net none`);
//! the only folder it may write on the machine is a private exchange folder of ours
//! (plus what `--bind DIR:rw` asks for), where the inner run writes its reports and
//! exit code; we copy the reports to where they were asked for afterwards.
//!
//! Nothing outlives the run: vng runs in its own process group and, as root, as
//! the first process of a PID namespace whose parent (`unshare`) dies with us, so
//! killing netlab — even with SIGKILL — ends the VM; a timeout or a signal kills
//! the whole group and waits until every process of it has exited.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Start-up allowance on top of the run's own limit: a boot under software
/// emulation takes 20–40 s here, more on a loaded machine.
pub const BOOT_ALLOWANCE: Duration = Duration::from_secs(600);

/// Modules udev would load for QEMU's emulated hardware (and CPU-specific crypto):
/// none is of use to a lab, and under software emulation loading them takes ~10 s
/// of a ~30 s boot.
/// How much longer deadlines are under software emulation (see Vm::slow_factor).
pub const TCG_SLOWDOWN: f64 = 10.0;

const BLACKLIST: &str = "modprobe.blacklist=kvm_amd,kvm_intel,kvm,ccp,sr_mod,cdrom,sg,ahci,libahci,libata,iTCO_wdt,\
intel_pmc_bxt,psmouse,evdev,i2c_i801,serio_raw,pcspkr,lpc_ich,crct10dif_pclmul,crc32_pclmul,ghash_clmulni_intel,\
sha512_ssse3,sha256_ssse3,sha1_ssse3,aesni_intel,scsi_mod,i2c_smbus,qemu_fw_cfg,button";

/// A VM ready to boot: the tools found, the kernel image, the exchange folder.
pub struct Vm {
    vng: PathBuf,
    image: PathBuf,
    /// The image's kernel release (what `uname -r` says inside).
    pub release: String,
    kvm: bool,
    exchange: tempfile::TempDir,
}

/// How the VM's run ended.
pub enum VmEnd {
    /// netlab inside exited with this code.
    Exited(i32),
    /// The VM ended without netlab's exit code (did not boot, a kernel panic, vng failed).
    Failed(String),
    /// Still running at the deadline: killed.
    TimedOut(Duration),
    /// Stopped by this signal: killed.
    Signal(i32),
}

impl Vm {
    /// Finds the kernel image `spec` names and the tools; what is missing is the
    /// machine's problem (exit 3), said with what to install.
    pub fn prepare(spec: &str) -> Result<Vm, i32> {
        let missing = |message: String| {
            eprintln!("netlab: --kernel {spec}: {message}");
            3
        };
        let image = resolve_image(spec).map_err(missing)?;
        let vng = which("vng").ok_or_else(|| {
            missing("virtme-ng's `vng` is not installed (pip install virtme-ng; it boots the kernel)".into())
        })?;
        let qemu = which("qemu-system-x86_64").ok_or_else(|| {
            missing("QEMU is not installed (apt install qemu-system-x86; virtme-ng boots the kernel with it)".into())
        })?;
        let release = image_release(&image).unwrap_or_else(|| {
            image
                .file_name()
                .map(|n| n.to_string_lossy().trim_start_matches("vmlinuz-").to_string())
                .unwrap_or_default()
        });
        let exchange = tempfile::Builder::new().prefix("netlab-vm-").tempdir().map_err(|e| {
            eprintln!("netlab: --kernel: cannot make a temporary folder: {e}");
            3
        })?;
        let kvm = kvm_works(&qemu);
        Ok(Vm { vng, image, release, kvm, exchange })
    }

    /// A file of the exchange folder: the path the inner run writes and we read.
    pub fn file(&self, name: &str) -> PathBuf {
        self.exchange.path().join(name)
    }

    /// Boots the VM and runs `exe args` in it (with `env` set), the machine's
    /// folders `rwdirs` writable in it; killed past `deadline` or on SIGINT,
    /// SIGTERM or SIGHUP, and waited for until nothing of it runs.
    pub fn run(
        &self,
        exe: &Path,
        args: &[OsString],
        env: &[(&str, OsString)],
        rwdirs: &[PathBuf],
        deadline: Duration,
    ) -> VmEnd {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return VmEnd::Failed(format!("cannot start: {e}")),
        };
        runtime.block_on(self.run_async(exe, args, env, rwdirs, deadline))
    }

    async fn run_async(
        &self,
        exe: &Path,
        args: &[OsString],
        env: &[(&str, OsString)],
        rwdirs: &[PathBuf],
        deadline: Duration,
    ) -> VmEnd {
        use tokio::signal::unix::{signal, SignalKind};
        let exit_file = self.file("exit-code");
        // vng mounts files over /etc/fstab, /etc/shadow and /etc/sudoers for the
        // guest's start-up; with mounts below it the sandbox could only show /etc
        // read-only, not overlay it (and the lab's /etc/netns files need it writable).
        let mut script = String::from(
            "awk '$2 ~ \"^/etc/\" {print $2}' /proc/self/mounts | sort -r | xargs -r umount 2>/dev/null; ",
        );
        // br_netfilter has no on-demand loading (the other modules labs need load
        // when a lab makes a link or a qdisc of their kind): loaded here, in the VM
        // only, as Docker loads it on a Debian machine and as this project's own
        // kernel has it built in.
        script += "modprobe -q br_netfilter 2>/dev/null; ";
        for (k, v) in env {
            script += &format!("{k}={} ", quote(&v.to_string_lossy()));
        }
        script += &quote(&exe.to_string_lossy());
        for a in args {
            script += " ";
            script += &quote(&a.to_string_lossy());
        }
        script += &format!("; code=$?; echo $code > {}; exit $code", quote(&exit_file.to_string_lossy()));
        // As root, vng starts as PID 1 of a PID namespace of its own, through
        // util-linux's `unshare --kill-child`: vng runs QEMU two processes down (sh,
        // virtme-run), which a parent-death signal does not reach; when the
        // namespace's first process dies, the kernel kills every other one in it.
        let unshare = which("unshare").filter(|_| nix::unistd::geteuid().is_root());
        let mut command = match &unshare {
            Some(unshare) => {
                let mut c = tokio::process::Command::new(unshare);
                c.args(["--pid", "--kill-child=SIGKILL", "--"]).arg(&self.vng);
                c
            }
            None => tokio::process::Command::new(&self.vng),
        };
        command.arg("--run").arg(&self.image).arg("--force-9p");
        if !self.kvm {
            command.arg("--disable-kvm");
        }
        command.arg("--name").arg(format!("netlab-vm-{}", std::process::id()));
        command.arg("--append").arg(BLACKLIST);
        command.arg(format!("--rwdir={}", self.exchange.path().display()));
        for dir in rwdirs {
            command.arg(format!("--rwdir={}", dir.display()));
        }
        if std::env::var_os("NETLAB_VM_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0") {
            command.arg("--verbose");
        }
        command.arg("--exec").arg(&script);
        // Stdin stays ours: QEMU would put a terminal in raw mode.
        command.stdin(Stdio::null());
        // Its own process group: a terminal's Ctrl-C reaches us and we end the VM;
        // if we die, so does `unshare`, and with it the namespace.
        command.process_group(0);
        super::die_with_parent(command.as_std_mut());
        let (Ok(mut int), Ok(mut term), Ok(mut hup)) =
            (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup()))
        else {
            return VmEnd::Failed("cannot watch for signals".into());
        };
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => return VmEnd::Failed(format!("cannot start {}: {e}", self.vng.display())),
        };
        let end = tokio::select! {
            status = child.wait() => {
                let status = status.ok().and_then(|s| s.code());
                match std::fs::read_to_string(&exit_file).ok().and_then(|t| t.trim().parse::<i32>().ok()) {
                    Some(code) => VmEnd::Exited(code),
                    None => VmEnd::Failed(match status {
                        Some(255) => "the VM ended before netlab did in it (vng exit 255: a kernel that does not boot here, or a panic; NETLAB_VM_VERBOSE=1 shows its console)".into(),
                        Some(code) => format!("vng failed (exit {code}) before netlab ran in the VM"),
                        None => "vng was killed before netlab ran in the VM".into(),
                    }),
                }
            }
            _ = tokio::time::sleep(deadline) => VmEnd::TimedOut(deadline),
            _ = int.recv() => VmEnd::Signal(libc::SIGINT),
            _ = term.recv() => VmEnd::Signal(libc::SIGTERM),
            _ = hup.recv() => VmEnd::Signal(libc::SIGHUP),
        };
        if matches!(end, VmEnd::TimedOut(_) | VmEnd::Signal(_)) {
            if let Some(pgid) = child.id() {
                // The whole group at once (vng and QEMU), then each of them waited for.
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid as i32), nix::sys::signal::SIGKILL);
            }
            super::test::kill_lab(&mut child).await;
        }
        end
    }

    /// The slow factor for the run inside: under software emulation everything takes
    /// about ten times as long (measured: iptables-restore, nft -f and curl with
    /// TCG on a 2-core machine), so the deadlines are ten times longer on top of
    /// what --slow-factor asked for.
    pub fn slow_factor(&self, asked: f64) -> f64 {
        if self.kvm {
            asked
        } else {
            asked * TCG_SLOWDOWN
        }
    }

    /// "kernel 6.1.0-57-amd64 (KVM)" for messages.
    pub fn describe(&self) -> String {
        format!("kernel {} ({})", self.release, if self.kvm { "KVM" } else { "software emulation" })
    }
}

/// `netlab run LAB --kernel IMAGE`: the same `netlab run` in a VM.
pub fn run_lab(args: &super::RunArgs, spec: &str) -> i32 {
    use crate::results::{Ending, Event, Events, Outcome};
    let started = std::time::Instant::now();
    if args.keep {
        eprintln!("netlab: --keep cannot be used with --kernel (the VM ends with the run)");
        return 2;
    }
    if let Err(c) = super::run::parse_settings(&args.set) {
        return c;
    }
    let vm = match Vm::prepare(spec) {
        Ok(vm) => vm,
        Err(c) => return c,
    };
    let Some(exe) = super::own_exe() else { return 3 };
    // The files asked for are made here, as a native run makes them before its
    // sandbox; the run inside writes into the exchange folder.
    let junit = match args.junit.as_deref().map(crate::results::JunitFile::create).transpose() {
        Ok(j) => j,
        Err(c) => return c,
    };
    for (path, what) in [(&args.state, "--state"), (&args.events, "--events")] {
        if let Some(path) = path {
            let opened = std::fs::OpenOptions::new().create(true).append(true).open(path);
            if let Err(e) = opened {
                eprintln!("netlab: {what} {}: {e}", path.display());
                return 2;
            }
        }
    }
    let results = std::env::var_os("NETLAB_RESULTS");
    let mut inner: Vec<OsString> = vec!["run".into(), args.lab.clone().into()];
    for s in &args.set {
        inner.extend(["--set".into(), s.into()]);
    }
    inner.extend(["--slow-factor".into(), vm.slow_factor(args.slow_factor).to_string().into()]);
    if let Some(t) = args.max_time {
        inner.extend(["--max-time".into(), t.as_secs_f64().to_string().into()]);
    }
    if let Some(n) = args.max_operations {
        inner.extend(["--max-operations".into(), n.to_string().into()]);
    }
    if args.explain {
        inner.push("--explain".into());
    }
    if args.diff {
        inner.push("--diff".into());
    }
    if let Some(u) = &args.until {
        inner.extend(["--until".into(), u.into()]);
    }
    let mut rwdirs = Vec::new();
    for b in &args.bind {
        inner.extend(["--bind".into(), b.into()]);
        if let Some(dir) = b.strip_suffix(":rw") {
            // Asked for: what the lab writes there is meant to stay.
            match std::path::absolute(dir) {
                Ok(d) if d.is_dir() => rwdirs.push(d),
                _ => {
                    eprintln!("netlab: --bind {b}: no such folder (give DIR, or DIR:rw for a writable one)");
                    return 2;
                }
            }
        }
    }
    if let Some(name) = clap::ValueEnum::to_possible_value(&args.format) {
        inner.extend(["--format".into(), name.get_name().into()]);
    }
    for (asked, flag, file) in [
        (args.junit.is_some(), "--junit", "junit.xml"),
        (args.state.is_some(), "--state", "state.json"),
        (args.events.is_some(), "--events", "events"),
    ] {
        if asked {
            inner.extend([flag.into(), vm.file(file).into()]);
        }
    }
    let mut env = Vec::new();
    if results.is_some() {
        env.push(("NETLAB_RESULTS", vm.file("results").into()));
    }
    if let Some(v) = std::env::var_os("NO_COLOR") {
        env.push(("NO_COLOR", v));
    }
    let deadline = args.limits().max_time + BOOT_ALLOWANCE;
    let end = vm.run(&exe, &inner, &env, &rwdirs, deadline);
    if let Some(path) = &args.state {
        copy_back(&vm.file("state.json"), path, false);
    }
    if let Some(path) = &args.events {
        copy_back(&vm.file("events"), path, true);
    }
    if let Some(path) = &results {
        copy_back(&vm.file("results"), Path::new(path), true);
    }
    let (outcome, code, message) = match end {
        VmEnd::Exited(code) => {
            if let Some(path) = &args.junit {
                copy_back(&vm.file("junit.xml"), path, false);
            }
            return code;
        }
        VmEnd::Failed(why) => (Outcome::Error, 3, why),
        VmEnd::TimedOut(t) => (
            Outcome::Error,
            3,
            format!("the VM did not end within {} s (--max-time and the boot allowance): killed", t.as_secs()),
        ),
        VmEnd::Signal(sig) => (Outcome::Interrupted, 128 + sig, "stopped by a signal: the VM was killed".into()),
    };
    let name = args.lab.display().to_string();
    eprintln!("netlab: {name} under {}: {message}", vm.describe());
    let file =
        args.events.as_ref().and_then(|p| std::fs::OpenOptions::new().append(true).open(p).ok()).map(std::rc::Rc::new);
    let mut events = Events::new(&name, file);
    let seconds = started.elapsed().as_secs_f64();
    events.emit(Event::End(Ending {
        outcome,
        exit_code: code,
        message: Some(message),
        detail: None,
        line: 0,
        seconds,
        kernel: Some(vm.release.clone()),
    }));
    let labs = [events.report(String::new())];
    let _ = crate::results::write_reports(&labs, seconds, args.format, junit.as_ref());
    code
}

/// The image `spec` names: a path to a kernel image; `debian`, the newest
/// /boot/vmlinuz-* whose modules are in /lib/modules (Debian's linux-image-amd64);
/// or a release, /boot/vmlinuz-RELEASE.
pub fn resolve_image(spec: &str) -> Result<PathBuf, String> {
    let install = "apt install linux-image-amd64 puts Debian's kernel in /boot";
    if spec == "debian" {
        let mut found: Vec<(String, PathBuf)> = std::fs::read_dir("/boot")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let release = name.strip_prefix("vmlinuz-")?.to_string();
                Path::new("/lib/modules").join(&release).join("modules.dep").exists().then(|| (release, e.path()))
            })
            .collect();
        found.sort_by(|a, b| version_order(&a.0, &b.0));
        return found
            .pop()
            .map(|(_, p)| p)
            .ok_or_else(|| format!("no /boot/vmlinuz-* with its modules in /lib/modules ({install})"));
    }
    let path = if spec.contains('/') { PathBuf::from(spec) } else { PathBuf::from(format!("/boot/vmlinuz-{spec}")) };
    if path.is_file() {
        return std::path::absolute(&path).map_err(|e| e.to_string());
    }
    if spec.contains('/') {
        Err(format!("no kernel image at {spec} (give a vmlinuz file, `debian`, or a release in /boot)"))
    } else {
        Err(format!("no /boot/vmlinuz-{spec} (give a vmlinuz file, `debian`, or a release in /boot; {install})"))
    }
}

/// Compares kernel releases by their numbers: 6.1.0-57 before 6.1.0-112.
fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |s: &str| -> Vec<Result<u64, String>> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for c in s.chars() {
            if !cur.is_empty() && cur.chars().all(|d| d.is_ascii_digit()) != c.is_ascii_digit() {
                out.push(cur.parse::<u64>().map_err(|_| cur.clone()));
                cur.clear();
            }
            cur.push(c);
        }
        if !cur.is_empty() {
            out.push(cur.parse::<u64>().map_err(|_| cur.clone()));
        }
        out
    };
    parts(a).cmp(&parts(b))
}

/// The release an x86 bzImage carries in its header (the version string the
/// boot protocol points at), as `file` shows it.
fn image_release(image: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = vec![0u8; 0x10000];
    let n = std::fs::File::open(image).ok()?.read(&mut head).ok()?;
    head.truncate(n);
    if head.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let at = u16::from_le_bytes([*head.get(0x20e)?, *head.get(0x20f)?]) as usize + 0x200;
    let text = head.get(at..)?;
    let end = text.iter().position(|&b| b == 0 || b == b' ')?;
    let release = String::from_utf8_lossy(&text[..end]).to_string();
    (!release.is_empty()).then_some(release)
}

/// Whether KVM works here: `NETLAB_VM_ACCEL=kvm|tcg` decides; otherwise QEMU is
/// started paused with KVM and told to quit — a /dev/kvm that opens but cannot run
/// a CPU (some nested setups) fails there at once.
fn kvm_works(qemu: &Path) -> bool {
    match std::env::var("NETLAB_VM_ACCEL").as_deref() {
        Ok("kvm") => return true,
        Ok("tcg") => return false,
        _ => {}
    }
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return false;
    }
    let probe = std::process::Command::new(qemu)
        .args(["-accel", "kvm", "-cpu", "host", "-M", "q35", "-nodefaults", "-display", "none"])
        .args(["-S", "-no-reboot", "-monitor", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut probe) = probe else { return false };
    if let Some(mut stdin) = probe.stdin.take() {
        let _ = std::io::Write::write_all(&mut stdin, b"quit\n");
    }
    let started = std::time::Instant::now();
    loop {
        match probe.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if started.elapsed() < Duration::from_secs(10) => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = probe.kill();
                let _ = probe.wait();
                return false;
            }
        }
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| {
        std::fs::metadata(p)
            .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
    })
}

/// A word for sh, single-quoted.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Copies what the inner run wrote to the exchange file `from` into `to`
/// (appended, or replacing its content), if it wrote anything.
pub fn copy_back(from: &Path, to: &Path, append: bool) {
    let Ok(bytes) = std::fs::read(from) else { return };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(to)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &bytes));
    if let Err(e) = written {
        eprintln!("netlab: cannot write {}: {e}", to.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_sort_by_their_numbers() {
        let mut r = vec!["6.1.0-112-amd64", "6.1.0-57-amd64", "5.10.0-9-amd64", "6.10.1-1-amd64"];
        r.sort_by(|a, b| version_order(a, b));
        assert_eq!(r, ["5.10.0-9-amd64", "6.1.0-57-amd64", "6.1.0-112-amd64", "6.10.1-1-amd64"]);
    }

    #[test]
    fn missing_images_say_what_to_install() {
        let e = resolve_image("9.9.9-nothing").unwrap_err();
        assert!(e.contains("apt install linux-image-amd64"), "{e}");
        let e = resolve_image("/nonexistent/vmlinuz").unwrap_err();
        assert!(e.contains("no kernel image at /nonexistent/vmlinuz"), "{e}");
    }

    #[test]
    fn words_are_quoted_for_sh() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
