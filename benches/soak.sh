#!/usr/bin/env bash
# K1: the kill soak. Starts `netlab run` on the labs of labs/ and on a lab that never
# ends, SIGKILLs it at a random moment (a tenth of the kills in its first 10 ms, the
# rest spread over the lab's whole run), and after every kill checks that nothing of
# the run is left on the machine. Exits 1 on any leftover. Needs root.
#
#   benches/soak.sh [-n KILLS] [-s SEED] [-b NETLAB] [-l "LAB ..."]
#     -n  kills that must land on a running netlab (default 1000)
#     -s  random seed (default: the time), printed so a run can be repeated
#     -b  the netlab binary (default: target/release/netlab, built first)
#     -l  labs (paths; "spin" is the never-ending one), default every labs/*.rhai and spin
#
# After each kill, compared with the state just before that run (so a change made by
# another process on a shared machine in an earlier window is not blamed on later
# kills):
#   links        `ip -o link` (index, name, flags of each)
#   netns        `ip netns list`
#   nft          `nft list ruleset`
#   mounts       /proc/self/mountinfo of a fresh process (cat)
#   /etc         every file: path, type, mode, size, mtime
#   /root        the same, without the caches other tools on the machine write all the
#                time (.cargo .rustup .cache .pyenv .npm .claude .debug)
#   TMPDIR       the runs get TMPDIR=<the soak's own directory>/tmp, which must stay empty
#   /tmp         entries whose name contains "netlab" (other processes of a shared
#                machine write /tmp freely): files by size and mtime, directories by
#                their existence (their mtime moves whenever anyone writes in them; a
#                harness of someone else's, /tmp/netlab-long, does). The scratch directories of netlab's test
#                suites and benches, netlab-WORDS-SUFFIX (netlab-test-1234,
#                netlab-prove-x1Yz, netlab-containment-x-99), come and go while others test
#                on the machine; `netlab run` makes none (its temp files follow TMPDIR,
#                checked exactly above), so changes of those are counted apart as
#                foreign, not as leftovers
#   processes    no live process (zombies do not count: this machine's init reaps
#                orphans slowly) carries the soak's marker in its environment, which
#                every process of a run inherits (netlab, the sandbox's PID 1, the
#                programs of exec_in); waited for up to 10 s after the kill
set -euo pipefail
cd "$(dirname "$0")/.."
kills=1000
seed=$(date +%s)
netlab=""
labs=""
while getopts "n:s:b:l:" opt; do
  case $opt in
    n) kills=$OPTARG ;;
    s) seed=$OPTARG ;;
    b) netlab=$OPTARG ;;
    l) labs=$OPTARG ;;
    *) sed -n '2,12p' "$0" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  echo "soak: needs root (it reads the machine's nft ruleset and namespaces)" >&2
  exit 2
fi
if [ -z "$netlab" ]; then
  cargo build --release --quiet
  netlab=target/release/netlab
fi
[ -n "$labs" ] || labs="$(ls labs/*.rhai | tr '\n' ' ') spin"
exec python3 - "$kills" "$seed" "$(realpath "$netlab")" $labs <<'PY'
import atexit, os, random, re, shutil, signal, stat, subprocess, sys, tempfile, time

kills_wanted, seed, netlab, labs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
rng = random.Random(seed)
work = tempfile.mkdtemp(prefix="netlab-soak-")
tmpdir = os.path.join(work, "tmp")
os.mkdir(tmpdir)
atexit.register(shutil.rmtree, work, True)
marker = f"soak-{os.getpid()}-{seed}"
spin = os.path.join(work, "spin.rhai")
with open(spin, "w") as f:
    f.write('step("spin", || { loop {} });\n')
ROOT_CACHES = {".cargo", ".rustup", ".cache", ".pyenv", ".npm", ".claude", ".debug"}
FOREIGN_TMP = re.compile(r"netlab-[\w.-]+-[\w.]+")

def out(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

def listing(top, skip=()):
    rows = []
    for dirpath, dirs, files in os.walk(top):
        if dirpath == top:
            dirs[:] = [d for d in dirs if d not in skip]
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            rows.append(f"{p} {st.st_mode:o} {st.st_size} {st.st_mtime_ns}")
    return sorted(rows)

def netlab_tmp():
    rows = []
    for name in sorted(os.listdir("/tmp")):
        if "netlab" not in name or os.path.join("/tmp", name) == work:
            continue
        try:
            st = os.lstat(os.path.join("/tmp", name))
        except FileNotFoundError:
            continue
        # A directory by its existence only: its mtime moves whenever anyone writes in it.
        if stat.S_ISDIR(st.st_mode):
            rows.append(f"/tmp/{name} {st.st_mode:o}")
        else:
            rows.append(f"/tmp/{name} {st.st_mode:o} {st.st_size} {st.st_mtime_ns}")
    return rows

def state():
    links = [" ".join(l.split()[:3]) for l in out("ip", "-o", "link", "show").splitlines()]
    return {
        "links": links,
        "netns": out("ip", "netns", "list").splitlines(),
        "nft": out("nft", "list", "ruleset").splitlines(),
        "mounts": out("cat", "/proc/self/mountinfo").splitlines(),
        "/etc": listing("/etc"),
        "/root": listing("/root", ROOT_CACHES),
        "TMPDIR": listing(tmpdir),
        "/tmp": netlab_tmp(),
    }

def live(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False

def processes():
    """Live processes of the soak's runs: its marker in their environment."""
    needle = f"NETLAB_SOAK={marker}\0".encode()
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                mine = needle in f.read()
        except OSError:
            continue
        if mine and live(p):
            found.append(int(p))
    return found

def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []

env = dict(os.environ, NETLAB_SOAK=marker, TMPDIR=tmpdir)
def start(lab):
    args = [netlab, "run", lab]
    if lab == spin:
        args += ["--max-time", "3600", "--max-operations", "1000000000000000"]
    return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

leftovers, foreign = [], 0
def settle_and_compare(before, what):
    """Waits until no process of the run lives, then compares the machine with `before`."""
    global foreign
    deadline = time.monotonic() + 10
    procs = processes()
    while procs and time.monotonic() < deadline:
        time.sleep(0.005)
        procs = processes()
    found = []
    if procs:
        found.append(f"processes {procs}")
        for p in procs:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    after = state()
    for key in before:
        if before[key] == after[key]:
            continue
        gone = sorted(set(before[key]) - set(after[key]))
        new = sorted(set(after[key]) - set(before[key]))
        if key == "/tmp":
            theirs = [r for r in gone + new if FOREIGN_TMP.fullmatch(r.split()[0][5:])]
            foreign += len(theirs)
            gone = [r for r in gone if r not in theirs]
            new = [r for r in new if r not in theirs]
            if not gone and not new:
                continue
        found.append(f"{key}: gone {gone[:5]} new {new[:5]}")
    if found:
        leftovers.append((what, found))
        print(f"LEFTOVER after {what}: " + "; ".join(found), flush=True)
    return after

lab_paths = [spin if l == "spin" else l for l in labs]
started = time.monotonic()
current = state()
# One whole run of each lab: how long it takes (to spread the kills over it), and a
# finished run must leave nothing either.
length = {}
for lab in lab_paths:
    if lab == spin:
        length[lab] = 1.0  # it never ends: kill it within its first second
        continue
    t = time.monotonic()
    p = start(lab)
    code = p.wait()
    length[lab] = time.monotonic() - t
    current = settle_and_compare(current, f"a whole run of {lab} (exit {code})")
    print(f"soak: {lab} takes {length[lab]:.2f} s (exit {code})", flush=True)

landed = early = before_fork = after_fork = 0
while landed < kills_wanted:
    lab = rng.choice(lab_paths)
    delay = rng.uniform(0, 0.010) if rng.random() < 0.1 else rng.uniform(0, length[lab] * 1.1)
    p = start(lab)
    t = time.monotonic()
    while time.monotonic() - t < delay:
        time.sleep(min(0.002, max(0.0, delay - (time.monotonic() - t))))
    forked = bool(children(p.pid))
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)  # still ours: not reaped, so the pid cannot be reused
        landed += 1
        before_fork += not forked
        after_fork += forked
        what = f"kill {landed} of {os.path.basename(lab)} at {delay * 1000:.1f} ms"
    else:
        early += 1
        what = f"a run of {os.path.basename(lab)} that ended before its kill at {delay * 1000:.1f} ms"
    p.wait()
    current = settle_and_compare(current, what)
    if landed % 100 == 0 and what.startswith("kill"):
        print(f"soak: {landed} kills, {len(leftovers)} with leftovers, {time.monotonic() - started:.0f} s", flush=True)

took = time.monotonic() - started
print(f"soak: {landed} kills ({before_fork} before the sandbox was forked, {after_fork} after; "
      f"{early} runs ended before their kill) of {len(lab_paths)} labs in {took:.0f} s, seed {seed}; "
      f"leftovers: {len(leftovers)}; foreign /tmp changes ignored: {foreign}")
sys.exit(1 if leftovers else 0)
PY
