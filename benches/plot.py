#!/usr/bin/env python3
"""plot.py RESULTS_DIR [OUT.svg]  ->  time vs N, log-log, every tool, as SVG.

Four panels: total (hyperfine wall time of the whole command), setup, verify,
teardown; median over the runs; the bar around each point spans min–max.
Hand-written SVG, standard library only.  Values below 0.1 ms are drawn at 0.1 ms.
"""
import math
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (shares the loader and the labels)

S = report.S
COLORS = ['#d62728', '#ff7f0e', '#9467bd', '#1f77b4', '#17becf', '#2ca02c', '#bcbd22',
          '#8c564b', '#e377c2', '#7f7f7f', '#000000']
DASH = {'floor-w1': '', 'floor-w1-noipv6': '6,3'}
PANELS = [('total', 'total (hyperfine, incl. sandbox)'), ('setup_s', 'setup (incl. ready wait)'),
          ('verify_s', 'verify (2N pings)'), ('teardown_s', 'teardown')]
YMIN = 1e-4


def values(r, key):
    xs = r['times'] if key == 'total' else S.col(r, key)
    return [max(x, YMIN) for x in xs]


def esc(s):
    return s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results')
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(d, 'w1.svg')
    rows = S.load(d)
    tools = report.tools_of(rows)
    ns = sorted({k[1] for k in rows})
    if not ns:
        sys.exit('plot.py: no results')
    allv = [v for r in rows.values() for k, _ in PANELS for v in values(r, k)]
    ylo = 10 ** math.floor(math.log10(max(min(allv), YMIN)))
    yhi = 10 ** math.ceil(math.log10(max(allv)))
    xlo, xhi = min(ns), max(ns)
    if xlo == xhi:
        xlo, xhi = xlo / 2, xhi * 2

    pw, ph = 420, 300            # panel plot area
    ml, mt, gap_x, gap_y = 70, 70, 90, 90
    legend_h = 22 * ((len(tools) + 1) // 2) + 20
    W = ml + 2 * pw + gap_x + 30
    H = mt + 2 * ph + gap_y + 75 + legend_h
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="26" text-anchor="middle" font-size="16">W1 bridge_nat: time vs N '
           '(log-log, median of the runs, bars = min–max)</text>']

    def fx(x, ox):
        return ox + (math.log10(x) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo)) * pw

    def fy(y, oy):
        y = min(max(y, ylo), yhi)
        return oy + ph - (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo)) * ph

    for p, (key, title) in enumerate(PANELS):
        ox = ml + (p % 2) * (pw + gap_x)
        oy = mt + (p // 2) * (ph + gap_y)
        svg.append(f'<text x="{ox + pw / 2}" y="{oy - 10}" text-anchor="middle" font-size="14">{esc(title)}</text>')
        svg.append(f'<rect x="{ox}" y="{oy}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
        e = math.floor(math.log10(ylo))
        while 10 ** e <= yhi * 1.0001:
            y = fy(10 ** e, oy)
            svg.append(f'<line x1="{ox}" x2="{ox + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
            lbl = f'{10 ** e:g} s'
            svg.append(f'<text x="{ox - 6}" y="{y + 4:.1f}" text-anchor="end">{lbl}</text>')
            e += 1
        for n in ns:
            x = fx(n, ox)
            svg.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{oy}" y2="{oy + ph}" stroke="#eee"/>')
            svg.append(f'<text x="{x:.1f}" y="{oy + ph + 16}" text-anchor="middle">{n}</text>')
        svg.append(f'<text x="{ox + pw / 2}" y="{oy + ph + 34}" text-anchor="middle">N (containers)</text>')
        for i, t in enumerate(tools):
            color = COLORS[i % len(COLORS)]
            dash = DASH.get(t, '' if t.startswith('netlab') else '2,3')
            width = 3 if t.startswith('netlab') else 1.6
            pts = []
            for n in ns:
                r = rows.get((t, n))
                vs = values(r, key) if r else []
                if not vs:
                    continue
                med = S.med(vs)
                x, y = fx(n, ox), fy(med, oy)
                pts.append((x, y))
                svg.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{fy(min(vs), oy):.1f}" '
                           f'y2="{fy(max(vs), oy):.1f}" stroke="{color}" stroke-width="1"/>')
                svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3.5 if t.startswith("netlab") else 2.5}" '
                           f'fill="{color}"><title>{esc(t)} N={n}: {med:.4f} s</title></circle>')
            if len(pts) > 1:
                path = ' '.join(f'{x:.1f},{y:.1f}' for x, y in pts)
                svg.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="{width}"'
                           + (f' stroke-dasharray="{dash}"' if dash else '') + '/>')
    ly = mt + 2 * ph + gap_y + 60
    for i, t in enumerate(tools):
        color = COLORS[i % len(COLORS)]
        x = ml + (i % 2) * (pw + gap_x)
        y = ly + 22 * (i // 2)
        dash = DASH.get(t, '' if t.startswith('netlab') else '2,3')
        svg.append(f'<line x1="{x}" x2="{x + 30}" y1="{y}" y2="{y}" stroke="{color}" '
                   f'stroke-width="{3 if t.startswith("netlab") else 1.6}"'
                   + (f' stroke-dasharray="{dash}"' if dash else '') + '/>')
        svg.append(f'<text x="{x + 38}" y="{y + 4}">{esc(report.LABEL.get(t, t))}</text>')
    svg.append('</svg>')
    with open(out, 'w') as f:
        f.write('\n'.join(svg) + '\n')
    print(f'plot.py: wrote {out}', file=sys.stderr)


if __name__ == '__main__':
    main()
