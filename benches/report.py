#!/usr/bin/env python3
"""report.py RESULTS_DIR  ->  markdown on stdout: netlab next to the baselines.

Reads RESULTS_DIR/raw/ (written by the shared run_bench.sh through benches/run.sh)
with the shared summarize.py's own loader, so medians are computed exactly as in
../shared/bench/RESULTS.md.  Prints, per N, one row per tool with the median
of each phase, and a table of ratios netlab / floor.  Standard library only.
"""
import importlib.util
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BASELINES = os.environ.get('BASELINES', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'bench'))


def load_summarize():
    for d in (os.path.join(os.path.dirname(HERE), 'target', 'bench'), BASELINES):
        p = os.path.join(d, 'summarize.py')
        if os.path.exists(p):
            spec = importlib.util.spec_from_file_location('summarize', p)
            m = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(m)
            return m
    sys.exit(f'report.py: summarize.py not found in target/bench or {BASELINES}')


S = load_summarize()
LABEL = dict(S.LABEL)
LABEL.update({
    'netlab': 'netlab (IPv6 off, all containers ping at once)',
    'netlab-seq': 'netlab, verify container by container',
    'netlab-v6': 'netlab, IPv6 on in the containers',
    'netlab-direct': 'netlab started from the host namespace (no wrapper sandbox)',
    'netlab-seq-direct': 'netlab from the host namespace, verify container by container',
})
ORDER = ['netlab', 'netlab-seq', 'netlab-direct', 'netlab-seq-direct', 'netlab-v6', 'floor-w1', 'floor-w1-noipv6', 'batch', 'batch-noipv6',
         'pyroute2-group', 'pyroute2', 'bash', 'mininet']
PHASES = [('total', 'total (hyperfine)'), ('setup_s', 'setup'), ('ready_wait_s', 'ready wait'),
          ('verify_s', 'verify'), ('teardown_s', 'teardown')]


def phase(r, key):
    """Median of one phase for one (tool, N) row, in seconds (None if absent)."""
    xs = r['times'] if key == 'total' else S.col(r, key)
    return statistics.median(xs) if xs else None


def tools_of(rows):
    names = {k[0] for k in rows}
    return [x for x in ORDER if x in names] + sorted(names - set(ORDER))


def ok_cell(r, n):
    oks = [int(x.get('ping_gw_ok', 0)) + int(x.get('ping_wan_ok', 0)) for x in r['logs'] if 'ping_gw_ok' in x]
    return f'{min(oks)}/{2 * n}' if oks else '–'


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return '–'
    return f'{a / b:.2f}'


def cpu(d, name, n):
    """Mean user and system CPU seconds per run (hyperfine; children included)."""
    import json
    try:
        with open(os.path.join(d, 'raw', f'{name}-{n}.json')) as f:
            r = json.load(f)['results'][0]
        return r.get('user'), r.get('system')
    except (OSError, ValueError, KeyError, IndexError):
        return None, None


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'results')
    rows = S.load(d)
    tools = tools_of(rows)
    ns = sorted({k[1] for k in rows})
    out = []
    w = out.append
    w('### Median per phase (seconds), by N\n')
    w('`total` = hyperfine wall time of the whole command (sandbox creation, the tool, its exit); '
      'the phases are timed by each tool itself.  `ready wait` is part of setup.  '
      '`ok` = successful pings / 2N in the worst run; `RSS` = peak RSS of the largest process (GNU time, median); '
      '`runs` = timed runs (a warmup run for N ≤ 100 is not counted); `CPU user/sys` = mean CPU seconds per run '
      '(hyperfine, all processes of the run, excluding kernel worker threads).  '
      '`×floor` = total / total of floor-w1 at the same N.\n')
    for n in ns:
        w(f'#### N = {n}\n')
        w('| tool | runs | total | setup | ready wait | verify | teardown | ok | RSS MiB | CPU user/sys | ×floor |')
        w('|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|')
        floor = rows.get(('floor-w1', n))
        ft = phase(floor, 'total') if floor else None
        for t in tools:
            r = rows.get((t, n))
            if not r:
                continue
            cells = [S.fmt(phase(r, k)) for k, _ in PHASES]
            rss = statistics.median(r['rss']) / 1024 if r['rss'] else None
            name = f'**{LABEL.get(t, t)}**' if t.startswith('netlab') else LABEL.get(t, t)
            u, sy = cpu(d, t, n)
            cs = f'{S.fmt(u, 2)} / {S.fmt(sy, 2)}' if u is not None else '–'
            w(f'| {name} | {len(r["times"])} | ' + ' | '.join(cells)
              + f' | {ok_cell(r, n)} | {S.fmt(rss, 1)} | {cs} | {ratio(phase(r, "total"), ft)} |')
        w('')
    for nl in [t for t in tools if t.startswith('netlab')]:
        for fl in ('floor-w1', 'floor-w1-noipv6'):
            if not any((fl, n) in rows for n in ns):
                continue
            w(f'### Ratio {nl} / {fl} (median / median; < 1 means netlab is faster)\n')
            w('| N | ' + ' | '.join(lbl for _, lbl in PHASES if _ != 'ready_wait_s') + ' | peak RSS |')
            w('|---:|' + '---:|' * (len(PHASES)) )
            for n in ns:
                a, b = rows.get((nl, n)), rows.get((fl, n))
                if not a or not b:
                    continue
                cells = [ratio(phase(a, k), phase(b, k)) for k, _ in PHASES if k != 'ready_wait_s']
                ra = statistics.median(a['rss']) if a['rss'] else None
                rb = statistics.median(b['rss']) if b['rss'] else None
                w(f'| {n} | ' + ' | '.join(cells) + f' | {ratio(ra, rb)} |')
            w('')
    print('\n'.join(out))


if __name__ == '__main__':
    main()
