//! `netlab exercise` as a student uses it, through a pseudo-terminal: the prompt
//! names the exercise; `check` shows every task not yet, with the next hint on each
//! attempt; the tutorial's commands typed one by one earn the points; Ctrl-C stops
//! a command, not the exercise; `exit` leaves, and nothing is left behind.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{machine_state, netlab, root};

/// A program on a pseudo-terminal of its own, and everything it has written.
struct Terminal {
    child: Child,
    master: std::fs::File,
    screen: Arc<Mutex<String>>,
    /// How much of the screen `expect` has consumed.
    seen: usize,
}

impl Terminal {
    fn start(mut command: std::process::Command) -> Terminal {
        let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
        let slave: OwnedFd = pty.slave;
        let fd = slave.as_raw_fd();
        command
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave))
            .env("TERM", "dumb")
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        // SAFETY: setsid and ioctl are async-signal-safe; the terminal becomes the
        // child's controlling terminal, as a login's is.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(fd, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("netlab starts");
        let master = std::fs::File::from(pty.master);
        let screen = Arc::new(Mutex::new(String::new()));
        let (mut reader, s) = (master.try_clone().expect("dup"), screen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().expect("screen").push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal { child, master, screen, seen: 0 }
    }

    fn type_line(&mut self, line: &str) {
        self.master.write_all(format!("{line}\n").as_bytes()).expect("typing");
    }

    /// Waits for `text` after what was seen so far; gives what came up to its end.
    fn expect(&mut self, text: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            {
                let screen = self.screen.lock().expect("screen");
                if let Some(at) = screen[self.seen..].find(text) {
                    let upto = self.seen + at + text.len();
                    let got = screen[self.seen..upto].to_string();
                    self.seen = upto;
                    return got;
                }
            }
            if started.elapsed() > within {
                let screen = self.screen.lock().expect("screen");
                panic!(
                    "no {text:?} within {within:?}; the terminal shows after the last match:\n{}",
                    &screen[self.seen..]
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait(&mut self, within: Duration) -> i32 {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!("netlab exercise did not end within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

const PROMPT: &str = "(netlab: nat) # ";

#[test]
fn a_student_works_through_the_nat_exercise_in_a_terminal() {
    let before = machine_state();
    let mut command = netlab();
    command.arg("exercise").arg(root().join("labs/exercises/nat.rhai"));
    let mut t = Terminal::start(command);
    let long = Duration::from_secs(30);
    let intro = t.expect(PROMPT, long);
    assert!(intro.contains("Exercise: NAT: container4 reaches the internet through the host"), "{intro}");
    assert!(intro.contains("4. MASQUERADE"), "the tasks are listed: {intro}");

    // Nothing done yet: every task not yet, each with its first hint.
    t.type_line("check; echo check-exit=$?");
    // (The terminal echoes the line typed: its output ends at the echo's output.)
    let out = t.expect("check-exit=1", long);
    assert!(out.contains("Score: 0/5 points"), "{out}");
    assert_eq!(out.matches("hint 1: ").count(), 4, "{out}");
    assert!(out.contains("not yet: there is no node named \"container4\""), "{out}");
    t.expect(PROMPT, long);

    // The tutorial's commands, typed one by one, all but the NAT rule.
    let reference = std::fs::read_to_string(root().join("labs/exercises/nat/solutions/reference.sh")).expect("read");
    let commands: Vec<&str> = reference.lines().filter(|l| !l.starts_with('#') && !l.starts_with("set ")).collect();
    // The last: the NAT rule, then the tutorial's curl through it.
    let nat = commands.iter().find(|l| l.contains("MASQUERADE")).expect("the NAT rule");
    let setup: Vec<&str> = commands.iter().take_while(|l| !l.contains("MASQUERADE")).copied().collect();
    assert!(nat.contains("MASQUERADE"), "{nat}");
    for line in &setup {
        t.type_line(line);
        t.expect(PROMPT, long);
    }
    t.type_line("ip netns exec container4 ping -c1 -W1 10.201.0.1 >/dev/null && echo ping-ok");
    t.expect("\nping-ok", long);
    t.expect(PROMPT, long);
    t.type_line("check");
    let out = t.expect(PROMPT, long);
    assert!(out.contains("Score: 3/5 points"), "{out}");
    assert!(out.contains("✓ 3. container4 has a default route"), "{out}");
    // The second failed attempt at the NAT task shows its second hint.
    assert!(out.contains("✗ 4. MASQUERADE"), "{out}");
    assert!(out.contains("hint 2: iptables -t nat -S POSTROUTING lists the rule"), "{out}");

    // Ctrl-C ends a command, not the exercise.
    t.type_line("sleep 600");
    std::thread::sleep(Duration::from_millis(300));
    t.master.write_all(b"\x03").expect("Ctrl-C");
    t.expect(PROMPT, long);
    t.type_line("echo still-here");
    t.expect("\nstill-here", long);
    t.expect(PROMPT, long);

    t.type_line(nat);
    t.expect(PROMPT, long);
    // netlab's own servers answer the student's commands while the shell waits.
    t.type_line("ip netns exec container4 curl -s -m 5 http://203.0.113.10/ | grep -c 'Example Domain'");
    let out = t.expect(PROMPT, long);
    assert!(out.contains("\n1\r\n") || out.contains("\n1\n"), "the page came through the NAT: {out}");
    t.type_line("check && echo ALL-DONE");
    let out = t.expect("\nALL-DONE", long);
    assert!(out.contains("Score: 5/5 points"), "{out}");
    assert!(!out.contains("hint"), "{out}");
    t.expect(PROMPT, long);

    // `check` works in a shell the student starts in a node, and can be piped.
    t.type_line("ip netns exec container4 bash -c 'check | head -1'");
    let out = t.expect(PROMPT, long);
    assert!(out.contains("Score: 5/5 points") && !out.contains("✓ 1."), "{out}");

    t.type_line("exit");
    let out = t.expect("everything is removed", long);
    assert!(out.contains("your last check: 5/5 points"), "{out}");
    assert_eq!(t.wait(long), 0);
    assert_eq!(before, machine_state(), "the exercise left something behind");
}

#[test]
fn a_lab_that_is_not_an_exercise_is_refused() {
    let out = netlab().arg("exercise").arg(root().join("labs/bridge.rhai")).output().expect("runs");
    let (code, _, err) = common::decode(out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not an exercise"), "{err}");
}

#[test]
fn a_shell_that_cannot_start_is_exit_3_and_nothing_is_left() {
    let before = machine_state();
    let out = netlab()
        .arg("exercise")
        .arg(root().join("labs/exercises/nat.rhai"))
        .args(["--shell", "no-such-shell-here"])
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    let (code, _, err) = common::decode(out);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot start the shell no-such-shell-here"), "{err}");
    assert_eq!(before, machine_state());
}
