#!/usr/bin/env python3
"""Summarise bench/run.sh raw output into Markdown tables of medians.

Also reads the raw output of bench/pipeline.sh, bench/hooks.sh and bench/exp.sh
and bench/s3.sh and bench/reflink.sh (same line format; scenarios `pipeline`, `hooks`,
`exp`, `s3`, `reflink`).

usage: summarize.py [--no-range] [--base TOOL] RAW [RAW ...]

Raw lines are `TOOL SCENARIO STEP SECONDS PEAK_RSS_MB` (SECONDS may be FAIL or
SKIP; lines starting with '#' are notes).  Several files may be given; their
lines are pooled.  For every scenario the output has one table:

  step | BASE s | OTHER s ... | OTHER/BASE ... | floor | floor s | BASE/floor

BASE is mlver by default; OTHER are the other tools found (dvc, ...).
Cells are medians over the repetitions, with (min–max) when n > 1 unless
--no-range.  OTHER/BASE > 1 means the base tool is faster.  The floor of a
step is the fastest (by median) of the floors listed for it in FLOOR_FOR
below; BASE/floor says how far the base tool is from the physical floor.
A step whose restored data failed verification is marked "⚠ wrong data".
Then a peak-memory table, the table of every floor, and the notes that
matter (versions, verification failures, failed steps).  Scenarios with
targets (TARGETS below: a ceiling on the base tool's median, a floor on
OTHER/BASE) get a line per target saying whether the medians meet it.
"""
import argparse
import re
import statistics
from collections import defaultdict

STEPS = ["init", "add", "status_clean", "status_mod", "commit", "checkout", "push", "status_remote", "pull",
         # bench/pipeline.sh, bench/hooks.sh, bench/exp.sh
         "populate", "noop", "dry", "status", "repro_one", "repro_param",
         "pre_commit", "post_checkout", "exp_show_cold", "exp_show"]
STEP_DOC = {
    "init": "init (+ git commit)",
    "add": "add (+ git commit of pointer)",
    "status_clean": "status, unchanged",
    "status_mod": "status after a change",
    "commit": "commit the change (+ git commit)",
    "readd": "re-add the change (+ git commit)",
    "checkout": "checkout after deleting the data",
    "push": "push to folder remote",
    "pull": "clone + pull into a fresh clone",
    "populate": "first repro: all stages (1 sample per run)",
    "noop": "repro, nothing to do",
    "dry": "decision after 1 dep file changed (repro --dry-run / --dry)",
    "status": "status after 1 dep file changed",
    "repro_one": "repro after 1 dep file changed (1 stage runs)",
    "repro_param": "repro after 1 foreach item's param changed (1 stage runs)",
    "pre_commit": "pre-commit hook, nothing changed",
    "post_checkout": "post-checkout hook, identical pointers",
    "exp_show_cold": "exp show --json -n N, no result cache",
    "exp_show": "exp show --json -n N, again (DVC: from its cache)",
}
# per-scenario wording where a step name means something else there
STEP_DOC_SCEN = {
    ("s3", "push"): "push to S3 (local moto server)",
    ("s3", "status_remote"): "status against the S3 remote (all pushed)",
    ("s3", "pull"): "clone + pull from S3 into a fresh clone",
    ("pipeline_foreach", "status"): "status, nothing changed",
    ("reflink", "add"): "add of the 2 GiB file on XFS (reflink=1), warm",
    ("reflink", "checkout"): "checkout after deleting it",
}
# targets: (scenario, step) -> (base median must be < SECONDS or None,
#                               OTHER/BASE must be >= RATIO or None)
TARGETS = {
    ("pipeline", "noop"): (1.0, 5.0),
    ("pipeline_foreach", "noop"): (1.0, 5.0),
    ("pipeline_foreach", "status"): (1.0, 5.0),
    ("hooks", "pre_commit"): (0.5, None),
    ("hooks", "post_checkout"): (0.5, None),
    ("exp", "exp_show_cold"): (2.0, None),
    ("exp", "exp_show"): (2.0, None),
    ("reflink", "checkout"): (0.5, None),
}
# floors that bound each step from below (the fastest available one is used);
# names from bench/run.sh, with the shared peers' floors.sh names as aliases
FLOOR_FOR = {
    "big": {
        "add": ["cp"],                     # read + write 2 GiB (no reflinks on ext4)
        "status_clean": ["git_status"],
        "status_mod": ["xxh3", "xxh3_128_1MiB", "xxh3_128_4MiB", "xxh3_128_8MiB"],
        "commit": ["cp"],                  # the changed file must be stored again
        "readd": ["cp"],
        "checkout": ["cp"],
        "push": ["cp_remote"],             # the floor: cp to the same place
        "pull": ["cp"],
    },
    "many": {
        "add": ["cp_r", "pycopy", "pycopy_tree"],
        "status_clean": ["statwalk_find", "statwalk_py", "statwalk"],
        "status_mod": ["statwalk_find", "statwalk_py", "statwalk"],
        "commit": ["statwalk_find", "statwalk_py", "statwalk"],   # + 11 small files
        "readd": ["statwalk_find", "statwalk_py", "statwalk"],
        "checkout": ["cp_r", "pycopy", "pycopy_tree"],
        "push": ["cp_r_remote"],
        "pull": ["cp_r", "pycopy", "pycopy_tree"],
    },
    "pipeline": {
        "noop": ["statwalk_find", "statwalk_py"],
        "dry": ["statwalk_find", "statwalk_py"],
        "status": ["statwalk_find", "statwalk_py"],
        "repro_one": ["stage_cmd"],
    },
    "pipeline_foreach": {
        "noop": ["statwalk_find", "statwalk_py"],
        "status": ["statwalk_find", "statwalk_py"],
        "repro_param": ["stage_cmd"],
    },
    "hooks": {
        "pre_commit": ["statwalk_find", "statwalk_py"],
        "post_checkout": ["statwalk_find", "statwalk_py"],
    },
    "reflink": {                           # bench/reflink.sh: XFS with reflink=1
        "add": ["xxh3_start"],             # hash every byte once + start-up; the clone is ~free
        "checkout": ["cp_reflink"],
    },
    "s3": {
        "push": ["s3_put"],
        "pull": ["s3_get"],
    },
    "exp": {
        "exp_show_cold": ["git_cat"],
        "exp_show": ["git_cat"],
    },
}


def fmt(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 0.01 else f"{x:.3f}"


def ratio(a, b):
    if a is None or b is None or b <= 0:
        return "–"
    r = a / b
    return f"{r:.1f}×" if r >= 10 else f"{r:.2f}×"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raw", nargs="+")
    ap.add_argument("--base", default="mlver")
    ap.add_argument("--no-range", action="store_true")
    a = ap.parse_args()

    secs = defaultdict(list)
    rss = defaultdict(list)
    fails = defaultdict(int)
    skips = defaultdict(int)
    wrong = defaultdict(int)   # restored data failed verification
    tools, scens, steps_seen, notes, headers = [], [], [], [], []
    for path in a.raw:
        for line in open(path, encoding="utf-8", errors="replace"):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.startswith("#"):
                low = line.lower()
                mv = re.match(r"# (\S+) (\S+) VERIFY FAILED after (\S+):", line)
                if mv:
                    wrong[mv.groups()] += 1
                if line.startswith("# bench/") or line.startswith("# run_all") \
                        or line.startswith("# mlver="):
                    headers.append(line[2:])
                elif " version " in line or "verify failed" in low or "failed" in low \
                        or "warning" in low or "cache.type" in line:
                    if line not in notes:
                        notes.append(line)
                continue
            p = line.split()
            if len(p) < 5:
                continue
            tool, scen, step, s, m = p[:5]
            key = (tool, scen, step)
            for lst, v in ((tools, tool), (scens, scen), (steps_seen, step)):
                if v not in lst:
                    lst.append(v)
            if s == "FAIL":
                fails[key] += 1
            elif s == "SKIP":
                skips[key] += 1
            else:
                try:
                    secs[key].append(float(s))
                    rss[key].append(float(m))
                except ValueError:
                    continue

    def med(key):
        v = secs.get(key)
        return statistics.median(v) if v else None

    def cell(key):
        v = secs.get(key)
        if not v:
            if fails.get(key):
                return "FAIL"
            return "SKIP" if skips.get(key) else "–"
        s = fmt(statistics.median(v))
        if len(v) > 1 and not a.no_range:
            s += f" ({fmt(min(v))}–{fmt(max(v))})"
        bad = fails.get(key, 0) + skips.get(key, 0)
        if bad:
            s += f" [+{fails.get(key, 0)} fail, {skips.get(key, 0)} skip]"
        if wrong.get(key):
            s += f" ⚠ wrong data ×{wrong[key]}"
        return s

    base = a.base
    others = [t for t in tools if t not in (base, "floor")]
    steps = [s for s in STEPS if s in steps_seen] + \
        [s for s in steps_seen if s not in STEPS]

    for h in headers:
        print(f"<!-- {h} -->")
    for scen in scens:
        if not any(t != "floor" for t, sc, _ in list(secs) + list(fails) + list(skips) if sc == scen):
            continue
        ns = sorted({len(v) for (t, sc, _), v in secs.items() if sc == scen and t != "floor"})
        nstr = "/".join(map(str, ns)) if ns else "0"
        print(f"\n### scenario `{scen}`: median wall seconds (min–max), n = {nstr}\n")
        hdr = ["step", f"{base} s"] + [f"{o} s" for o in others] + \
            [f"{o}/{base}" for o in others] + ["floor", "floor s", f"{base}/floor"]
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for st in steps:
            keys = [(base, scen, st)] + [(o, scen, st) for o in others]
            if not any(k in secs or k in fails or k in skips for k in keys):
                continue
            bm = med((base, scen, st))
            row = [STEP_DOC_SCEN.get((scen, st), STEP_DOC.get(st, st)), cell((base, scen, st))]
            row += [cell((o, scen, st)) for o in others]
            row += [ratio(med((o, scen, st)), bm) for o in others]
            cands = [(med(("floor", scen, f)), f) for f in FLOOR_FOR.get(scen, {}).get(st, [])
                     if med(("floor", scen, f)) is not None]
            if cands:
                fm, fname = min(cands)
                row += [fname, fmt(fm), ratio(bm, fm)]
            else:
                row += ["–", "–", "–"]
            print("| " + " | ".join(row) + " |")

        # targets
        tg = [(st, TARGETS[(scen, st)]) for st in steps if (scen, st) in TARGETS]
        if tg:
            print(f"\n#### scenario `{scen}`: targets (medians)\n")
            for st, (ceil, min_ratio) in tg:
                bm = med((base, scen, st))
                parts = []
                if ceil is not None:
                    ok = bm is not None and bm < ceil
                    parts.append(f"{base} {fmt(bm)} s < {ceil:g} s: {'met' if ok else 'NOT met'}")
                if min_ratio is not None:
                    for o in others:
                        om = med((o, scen, st))
                        r = om / bm if om is not None and bm else None
                        ok = r is not None and r >= min_ratio
                        parts.append(f"{o}/{base} {ratio(om, bm)} ≥ {min_ratio:g}×: "
                                     f"{'met' if ok else 'NOT met'}")
                print(f"- {STEP_DOC_SCEN.get((scen, st), STEP_DOC.get(st, st))}: " + "; ".join(parts))

        # peak memory
        print(f"\n#### scenario `{scen}`: peak RSS MB (median per step)\n")
        hdr = ["step", base] + others
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for st in steps:
            vals = []
            for t in [base] + others:
                v = rss.get((t, scen, st))
                vals.append(f"{statistics.median(v):.0f}" if v else "–")
            if any(v != "–" for v in vals):
                print(f"| {STEP_DOC_SCEN.get((scen, st), STEP_DOC.get(st, st))} | " + " | ".join(vals) + " |")

    floor_keys = [k for k in secs if k[0] == "floor"]
    if floor_keys:
        print("\n### floors: median wall seconds (min–max), peak RSS MB\n")
        print("| scenario | floor | seconds | n | peak RSS MB |")
        print("|---|---|---|---|---|")
        for k in sorted(floor_keys, key=lambda k: (scens.index(k[1]), k[2])):
            print(f"| {k[1]} | {k[2]} | {cell(k)} | {len(secs[k])} | "
                  f"{statistics.median(rss[k]):.0f} |")
    failed = defaultdict(list)
    for k, n in fails.items():
        failed[k[:2]].append(f"{k[2]}×{n}" if n > 1 else k[2])
    if notes or failed:
        print("\n### notes\n")
        for (t, sc), sts in failed.items():
            print(f"- {t} {sc}: FAIL in {', '.join(sts)}")
        seen = set()
        for n in notes:
            # versions repeat once per run: print each distinct text once
            txt = n[2:]
            if txt in seen:
                continue
            seen.add(txt)
            print(f"- {txt}")


if __name__ == "__main__":
    main()
