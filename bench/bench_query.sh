#!/usr/bin/env bash
# bench/bench_query.sh: warm single-thread query throughput and recall@10 of s3vec beside FAISS IndexIVFFlat
# (Debian's python3-faiss) on GloVe-100 and Fashion-MNIST, the recall-vs-queries/s plot, and the
# f32 / f16 / i8 encoding comparison with the keys+metadata compression figures.
#
# usage: bench/bench_query.sh [--reps N] [--sets glove,fmnist] [--only query|encodings] [--rebuild]
#                             [--build-dir DIR] [--no-write] [--report-only]
#
#   query      for each data set: our index with exactly FAISS's nlist (no cluster splitting), our index as
#              the default build makes it (big clusters split), and FAISS IVFFlat with the same nlist and
#              k-means iterations; every rep runs bench_query (ours), bench_query with S3VEC_SIMD=scalar,
#              bench_query on the split index and faiss_ivf.py query, one after the other, each at nprobe
#              1..128, one thread, one query per call (FAISS also batched, for context). Medians of the
#              reps; ratios at equal nprobe and at equal recall (FAISS's queries/s interpolated on its
#              curve); bench/results/query_<set>.png.
#   encodings  f32 vs f16 vs i8 (default builds): index bytes, recall@10 and queries/s at the default
#              nprobe, two fixed ones and all clusters (exact scan); keys+metadata bytes raw vs zstd for the GloVe words as keys and
#              for a generated JSON Lines file with realistic metadata.
#
# --report-only redoes the tables and plots from the run files of the last run without measuring.
# Writes bench/results/query.md and encodings.md (unless --no-write): the generated part is replaced, and
# anything after a line "<!-- notes -->" in the existing file is kept. Prints the same tables on stdout.
# Indexes and run files go to $S3VEC_BENCH_WORK (default $S3VEC_DATA/bench); data from $S3VEC_DATA
# (default ../data beside the repository, fetched with scripts/fetch-data.sh when missing); ground truth
# from $S3VEC_SHARED_DIR (default ../shared/data). Binaries from --build-dir (default build/release; they
# are brought up to date with cmake --build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=${S3VEC_BUILD_DIR:-$repo/build/release}
data=${S3VEC_DATA:-$repo/../data}
shared=${S3VEC_SHARED_DIR:-$repo/../shared/data}
py=/usr/bin/python3 # Debian's interpreter: it sees python3-faiss and numpy
reps=3
sets="glove fmnist"
sections="query encodings"
rebuild=0
write=1
report_only=0
cmdline="bench/bench_query.sh $*"
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift 2 ;;
    --sets) sets=${2//,/ }; shift 2 ;;
    --only) sections=$2; shift 2 ;;
    --rebuild) rebuild=1; shift ;;
    --build-dir) build=$(cd "$2" && pwd); shift 2 ;;
    --no-write) write=0; shift ;;
    --report-only) report_only=1; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "bench_query.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$data"
data=$(cd "$data" && pwd)
work=${S3VEC_BENCH_WORK:-$data/bench}
mkdir -p "$work/runs"
results=$repo/bench/results
mkdir -p "$results"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cpu_model=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "bench_query.sh: $started, $cpu_model, $(nproc) CPUs, load average $load_start, commit $commit" >&2

if [ "$report_only" = 0 ]; then
  [ -f "$build/CMakeCache.txt" ] || cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target s3vec bench_query >/dev/null
fi
s3vec=$build/cli/s3vec
bq=$build/bench/bench_query

# set -> base, queries, truth, nlist
set_files() {
  case "$1" in
    glove) base=$data/glove100_base.fvecs; queries=$data/glove100_query.fvecs
           truth=$shared/glove100_gt100_l2.ivecs; nlist=1024; fixed="16,64" ;;
    fmnist) base=$data/fmnist_base.fvecs; queries=$data/fmnist_query.fvecs
            truth=$shared/fmnist_gt100_l2.ivecs; nlist=245; fixed="4,16" ;;
    *) echo "bench_query.sh: unknown set $1 (glove, fmnist)" >&2; exit 2 ;;
  esac
  if [ ! -s "$base" ] || [ ! -s "$queries" ]; then
    "$repo/scripts/fetch-data.sh" "$([ "$1" = glove ] && echo glove100 || echo fmnist)" "$data" >&2
  fi
}

# ours_index DIR INPUT [build options...]: builds the index unless present; the report goes to DIR.build.json
ours_index() {
  local dir=$1 input=$2
  shift 2
  if [ "$rebuild" = 1 ] || [ ! -s "$dir/manifest" ] || [ ! -s "$dir.build.json" ]; then
    rm -rf "$dir"
    echo "bench_query.sh: building $dir" >&2
    "$s3vec" build "$dir" --input "$input" --niter 10 --seed 1 --threads 2 --json -q "$@" >"$dir.build.json"
  fi
}

faiss_index() { # FILE BASE NLIST
  if [ "$rebuild" = 1 ] || [ ! -s "$1" ]; then
    echo "bench_query.sh: building $1 (FAISS)" >&2
    OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 "$py" "$here/faiss_ivf.py" build "$2" "$3" 10 2 "$1" >"$1.build.json"
  fi
}

# ---- query ------------------------------------------------------------------------------------------
run_query() {
  local set=$1
  set_files "$set"
  local ours=$work/$set-f32-nlist$nlist-nosplit split=$work/$set-f32-nlist$nlist fx=$work/$set-faiss-nlist$nlist.index
  ours_index "$ours" "$base" --nlist "$nlist" --max-cluster-factor 1000000000
  ours_index "$split" "$base" --nlist "$nlist"
  faiss_index "$fx" "$base" "$nlist"
  local probes=1,2,4,8,16,32,64,128 same=0
  rm -f "$work/runs/q-$set-"*
  # no cluster above the split threshold: the default build is the same index (same seed), not run twice
  if grep -Eq '"splitClusters":[[:space:]]*0,' "$split.build.json"; then
    same=1
    touch "$work/runs/q-$set-split-same"
  fi
  for r in $(seq 1 "$reps"); do
    echo "bench_query.sh: $set rep $r/$reps (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    "$bq" --index "$ours" --queries "$queries" --truth "$truth" --nprobe $probes --reps 1 --tsv \
      >"$work/runs/q-$set-ours-$r.tsv"
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$py" "$here/faiss_ivf.py" query "$fx" "$queries" "$truth" $probes 10 \
      --batch >"$work/runs/q-$set-faiss-$r.jsonl"
    if [ "$same" = 1 ]; then
      cp "$work/runs/q-$set-ours-$r.tsv" "$work/runs/q-$set-split-$r.tsv"
    else
      "$bq" --index "$split" --queries "$queries" --truth "$truth" --nprobe $probes --reps 1 --tsv \
        >"$work/runs/q-$set-split-$r.tsv"
    fi
    S3VEC_SIMD=scalar "$bq" --index "$ours" --queries "$queries" --truth "$truth" --nprobe $probes --reps 1 --tsv \
      >"$work/runs/q-$set-scalar-$r.tsv"
  done
}

# ---- encodings --------------------------------------------------------------------------------------
make_jsonl() { # OUT ROWS: GloVe vectors with the words as keys and generated metadata
  [ -s "$1" ] && return
  echo "bench_query.sh: generating $1" >&2
  "$py" - "$data/glove100_base.fvecs" "$data/glove100_base.keys" "$1" "$2" <<'EOF'
import json, random, struct, sys
fv, keys, out, rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random(20240601)
genres = ["drama", "comedy", "documentary", "thriller", "romance", "science fiction", "horror", "animation",
          "crime", "adventure", "biography", "music", "history", "war", "western", "family"]
tags = ["based on a novel", "independent", "black and white", "remake", "sequel", "award winner", "cult",
        "director's cut", "silent", "musical numbers", "true story", "coming of age", "ensemble cast",
        "road movie", "period piece", "dystopia", "heist", "time travel", "courtroom", "sports", "small town",
        "new york", "paris", "tokyo", "london", "space", "ocean", "desert", "winter", "summer"]
langs = ["en", "en", "en", "fr", "de", "es", "it", "ja", "ko", "hi", "pt", "sv"]
words = [w.rstrip("\n") for w in open(keys, encoding="utf-8")]
vocab = [w for w in words[:20000] if w.isalpha()]
with open(fv, "rb") as f, open(out, "w", encoding="utf-8") as o:
    for i in range(rows):
        (d,) = struct.unpack("<i", f.read(4))
        vec = struct.unpack("<%df" % d, f.read(4 * d))
        n = rng.randint(1, 5)
        title = " ".join(rng.choice(vocab) for _ in range(n)).title()
        meta = {"title": title, "year": rng.randint(1920, 2024), "genre": rng.choice(genres),
                "tags": rng.sample(tags, rng.randint(0, 4)), "rating": round(rng.uniform(1, 10), 1),
                "language": rng.choice(langs), "votes": int(rng.paretovariate(1.2) * 10)}
        o.write(json.dumps({"key": words[i], "data": [float("%.6g" % x) for x in vec], "metadata": meta},
                           ensure_ascii=False, separators=(",", ":")) + "\n")
EOF
}

run_encodings() {
  local set=$1
  set_files "$set"
  local e dir
  for e in f32 f16 i8; do
    dir=$work/$set-$e-nlist$nlist
    [ "$e" = f32 ] && ours_index "$dir" "$base" --nlist "$nlist" || ours_index "$dir" "$base" --nlist "$nlist" --encoding "$e"
  done
  rm -f "$work/runs/e-$set-"*
  for r in $(seq 1 "$reps"); do
    echo "bench_query.sh: encodings $set rep $r/$reps (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    for e in f32 f16 i8; do
      "$bq" --index "$work/$set-$e-nlist$nlist" --queries "$queries" --truth "$truth" --nprobe "default,$fixed,all" \
        --reps 1 --tsv >"$work/runs/e-$set-$e-$r.tsv"
    done
  done
  if [ "$set" = glove ]; then
    ours_index "$work/glove-keys-nlist1024" "$base" --nlist 1024 --keys "$data/glove100_base.keys"
    make_jsonl "$work/meta100k.jsonl" 100000
    ours_index "$work/meta100k" "$work/meta100k.jsonl"
  fi
}

for s in $sections; do
  [ "$report_only" = 1 ] && break
  for set in $sets; do
    case "$s" in
      query) run_query "$set" ;;
      encodings) run_encodings "$set" ;;
      *) echo "bench_query.sh: unknown section $s" >&2; exit 2 ;;
    esac
  done
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# ---- report -----------------------------------------------------------------------------------------
BQ_STARTED=$started BQ_FINISHED=$finished BQ_CPU=$cpu_model BQ_NCPU=$(nproc) BQ_LOAD_START=$load_start \
  BQ_LOAD_END=$load_end BQ_COMMIT=$commit BQ_CMD=$cmdline BQ_REPORT_ONLY=$report_only \
  "$py" - "$work" "$results" "$here/plot_recall_qps.gp" "$write" "$reps" "$sets" "$sections" <<'EOF'
import glob, json, math, os, statistics, subprocess, sys
work, results, gp, write, reps = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", int(sys.argv[5])
sets, sections = sys.argv[6].split(), sys.argv[7].split()
E = os.environ
header = {"started": E["BQ_STARTED"], "finished": E["BQ_FINISHED"], "cpu": E["BQ_CPU"], "ncpu": E["BQ_NCPU"],
          "load_start": E["BQ_LOAD_START"], "load_end": E["BQ_LOAD_END"], "commit": E["BQ_COMMIT"],
          "cmd": E["BQ_CMD"], "reps": reps}
# the measuring run's header is kept beside its run files, per section, so --report-only shows it
headers = {}
for sec in sections:
    hp = f"{work}/runs/header-{sec}.json"
    headers[sec] = dict(header)
    if E["BQ_REPORT_ONLY"] == "1":
        if os.path.exists(hp):
            headers[sec] = json.load(open(hp))
            headers[sec]["redrawn"] = header["started"]
    else:
        json.dump(header, open(hp, "w"))
NAMES = {"glove": ("GloVe-100", 1024, "glove100_gt100_l2.ivecs"), "fmnist": ("Fashion-MNIST", 245, "fmnist_gt100_l2.ivecs")}
COLS = ["rep", "nprobe", "recall", "qps_wall", "qps_cpu", "p50_ms", "p99_ms", "vectors_scanned"]

def read_tsv(path):
    rows, comments = [], []
    for line in open(path):
        if line.startswith("#"):
            comments.append(line[2:].rstrip())
        elif line.strip():
            v = line.split("\t")
            rows.append({c: float(x) for c, x in zip(COLS, v)})
    return rows, comments

def read_jsonl(path):
    return [json.loads(l) for l in open(path) if l.strip()]

def med(xs):
    return statistics.median(xs)

def by_probe(runs):
    """runs: list (one per rep) of row lists -> {nprobe: {field: median}} (recall: checked equal)."""
    out = {}
    for rows in runs:
        for i, r in enumerate(rows):
            out.setdefault(i, []).append(r)
    agg = []
    for i in sorted(out):
        rs = out[i]
        a = {"nprobe": int(rs[0]["nprobe"]), "recall": rs[0]["recall"],
             "recall_spread": max(r["recall"] for r in rs) - min(r["recall"] for r in rs)}
        for f in ("qps_wall", "qps_cpu", "p50_ms", "p99_ms", "vectors_scanned", "qps_inlib", "batch_qps_wall",
                  "batch_qps_cpu"):
            vals = [r[f] for r in rs if f in r]
            if vals:
                a[f] = med(vals)
                a[f + "_min"], a[f + "_max"] = min(vals), max(vals)
        agg.append(a)
    return agg

def interp_qps(curve, recall, field):
    """A curve's queries/s at a recall: walking the curve in nprobe order, the first point that reaches the
    recall, log-linearly interpolated from the point before it (the curve at its best: the smallest
    nprobe that reaches the recall). None when the recall is below the curve's first point or never reached."""
    pts = [(c["recall"], c[field]) for c in sorted(curve, key=lambda c: c["nprobe"])]
    if not pts or recall < pts[0][0]:
        return None
    for i, (r1, q1) in enumerate(pts):
        if r1 >= recall:
            if i == 0 or r1 == recall:
                return q1
            r0, q0 = pts[i - 1]
            if r0 >= r1:
                return q1
            t = (recall - r0) / (r1 - r0)
            return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
    return None

def interp_recall(curve, work):
    """A curve's recall at a number of vectors scanned per query, linear in log(work) between its points."""
    pts = sorted((c["vectors_scanned"], c["recall"]) for c in curve)
    for (w0, r0), (w1, r1) in zip(pts, pts[1:]):
        if w0 <= work <= w1:
            if w1 == w0:
                return max(r0, r1)
            t = math.log(work / w0) / math.log(w1 / w0)
            return r0 + t * (r1 - r0)
    return None

def fmt(x, nd=0):
    if x is None:
        return "n/a"
    return f"{x:,.{nd}f}"

def ratio(a, b):
    return "n/a" if not a or not b else f"{a / b:.2f}x"

def keep_notes(path, text):
    notes = ""
    if os.path.exists(path):
        old = open(path).read()
        i = old.find("<!-- notes -->")
        if i >= 0:
            notes = old[i:]
    return text + ("\n" + notes if notes else "\n<!-- notes -->\n")

def run_header(title, sec):
    h = headers[sec]
    lines = [f"# {title}", "",
             "<!-- generated by bench/bench_query.sh: everything above the notes marker is rewritten on each run -->", "",
             f"- run: {h['started']} .. {h['finished']} (UTC), commit {h['commit']}",
             f"- machine: {h['cpu']} ({h['ncpu']} CPUs), load average (1/5/15 min) at start {h['load_start']}, "
             f"at end {h['load_end']}",
             "- **the machine was shared** with other engineers compiling and testing: wall-clock figures are noisy; "
             "thread-CPU figures (time this thread actually ran) are the steadier comparison",
             f"- command: `{h['cmd']}` (medians of {h['reps']} reps; each rep runs every program once, one after the other)"]
    if "redrawn" in h:
        lines.append(f"- tables and plots redrawn from that run's files with `--report-only` at {h['redrawn']}")
    return lines + [""]

def faiss_runtime(rows):
    rt = rows[0]["runtime"]
    ob = rt.get("openblas", {})
    libs = ", ".join(os.path.basename(p) for p in rt["libraries"])
    return (f"FAISS {rt['faiss_version']} ({rt['faiss_compile_options']}: built for baseline x86-64, "
            f"no AVX2 code), libraries mapped: {libs}; {ob.get('config', 'no OpenBLAS')} core {ob.get('core', '?')}, "
            f"OpenBLAS threads {ob.get('threads', '?')}, OpenMP threads 1")

out_md = {}
if "query" in sections:
    md = run_header("Query benchmark: s3vec beside FAISS IndexIVFFlat, one thread, warm", "query")
    md += ["Ours: `bench/bench_query` opens the index folder with a cluster cache larger than the index, warms it "
           "(verify reads and decodes every cluster, then 100 queries at the largest nprobe; the program fails if "
           "a timed query misses the cache), then times every `ivf_index_search` call on one thread. FAISS: `bench/faiss_ivf.py query`, "
           "IndexIVFFlat with the same nlist and 10 k-means iterations, `faiss.omp_set_num_threads(1)`, "
           "OPENBLAS_NUM_THREADS=1, one query per `search_c` call in a loop after a warm pass (the serverless access "
           "pattern). FAISS batched = one `search` call over all 1,000 queries on one thread: a different access "
           "pattern, shown for context only. Recall@10 against the exact ground truth in shared/data.", ""]
    for s in sets:
        files = sorted(glob.glob(f"{work}/runs/q-{s}-ours-*.tsv"))
        if not files:
            continue
        name, nlist, gt = NAMES[s]
        ours_runs, comments = [], None
        for f in files:
            rows, c = read_tsv(f)
            ours_runs.append(rows)
            comments = comments or c
        ours = by_probe(ours_runs)
        split = by_probe([read_tsv(f)[0] for f in sorted(glob.glob(f"{work}/runs/q-{s}-split-*.tsv"))])
        split_c = read_tsv(sorted(glob.glob(f"{work}/runs/q-{s}-split-*.tsv"))[0])[1]
        scal = by_probe([read_tsv(f)[0] for f in sorted(glob.glob(f"{work}/runs/q-{s}-scalar-*.tsv"))])
        fr = [read_jsonl(f) for f in sorted(glob.glob(f"{work}/runs/q-{s}-faiss-*.jsonl"))]
        faiss = by_probe(fr)
        md += [f"## {name} (nlist {nlist}, {len(files)} reps)", "",
               f"- ours: {comments[0]}", f"- ours: {comments[1]}",
               f"- ours, default build: {split_c[0]}"
               + (" (no cluster was above the split threshold, so this is the same index as the no-split one "
                  "and its runs are not repeated)" if os.path.exists(f"{work}/runs/q-{s}-split-same") else ""),
               f"- peer: {faiss_runtime(fr[0])}", ""]
        md += ["### At equal nprobe", "",
               "| nprobe | recall@10 ours | recall@10 FAISS | q/s ours (CPU) | q/s FAISS (CPU) | ratio (CPU) | "
               "q/s ours (wall) | q/s FAISS (wall) | ratio (wall) | FAISS in-library q/s (wall) | ours scalar q/s (CPU) | "
               "vectors scanned ours / FAISS |",
               "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for o, f, sc in zip(ours, faiss, scal):
            md.append(f"| {o['nprobe']} | {o['recall']:.4f} | {f['recall']:.4f} | {fmt(o['qps_cpu'])} | {fmt(f['qps_cpu'])} | "
                      f"**{ratio(o['qps_cpu'], f['qps_cpu'])}** | {fmt(o['qps_wall'])} | {fmt(f['qps_wall'])} | "
                      f"{ratio(o['qps_wall'], f['qps_wall'])} | {fmt(f['qps_inlib'])} | {fmt(sc['qps_cpu'])} | "
                      f"{fmt(o['vectors_scanned'])} / {fmt(f['vectors_scanned'])} |")
        md += ["", "### At equal recall (FAISS's one-query-per-call curve interpolated at our recall)", "",
               "| index | nprobe | recall@10 | q/s ours (CPU) | FAISS q/s at that recall (CPU) | ratio (CPU) | "
               "q/s ours (wall) | FAISS q/s at that recall (wall) | ratio (wall) | p50 / p99 ms ours |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for label, curve in (("nlist as FAISS", ours), ("default build (split)", split)):
            for o in curve:
                fc = interp_qps(faiss, o["recall"], "qps_cpu")
                fw = interp_qps(faiss, o["recall"], "qps_wall")
                md.append(f"| {label} | {o['nprobe']} | {o['recall']:.4f} | {fmt(o['qps_cpu'])} | {fmt(fc)} | "
                          f"**{ratio(o['qps_cpu'], fc)}** | {fmt(o['qps_wall'])} | {fmt(fw)} | {ratio(o['qps_wall'], fw)} | "
                          f"{o['p50_ms']:.3f} / {o['p99_ms']:.3f} |")
        md += ["", "### At equal work (FAISS's recall interpolated at the number of vectors we scan per query)", "",
               "Independent of kernels and of the machine's load: how good each partition is at finding neighbours "
               "for a given number of vectors scanned.", "",
               "| index | nprobe | vectors scanned/query | recall@10 ours | FAISS recall@10 at that work | difference |",
               "|---|---:|---:|---:|---:|---:|"]
        for label, curve in (("nlist as FAISS", ours), ("default build (split)", split)):
            for o in curve:
                fr_at = interp_recall(faiss, o["vectors_scanned"])
                diff = None if fr_at is None else o["recall"] - fr_at
                md.append(f"| {label} | {o['nprobe']} | {fmt(o['vectors_scanned'])} | {o['recall']:.4f} | "
                          f"{'n/a' if fr_at is None else f'{fr_at:.4f}'} | "
                          f"{'n/a' if fr_at is None else f'{diff:+.4f}'} |")
        md += ["", "### FAISS batched (all queries in one call, one thread; context, not the serverless pattern)", "",
               "| nprobe | recall@10 | q/s (CPU) | q/s (wall) | one-per-call q/s (CPU) |", "|---:|---:|---:|---:|---:|"]
        for f in faiss:
            md.append(f"| {f['nprobe']} | {f['recall']:.4f} | {fmt(f['batch_qps_cpu'])} | {fmt(f['batch_qps_wall'])} | "
                      f"{fmt(f['qps_cpu'])} |")
        spread = max(o["qps_cpu_max"] / o["qps_cpu_min"] for o in ours + faiss)
        spread_w = max(o["qps_wall_max"] / o["qps_wall_min"] for o in ours + faiss)
        md += ["", f"Noise: across the {len(files)} reps, the largest max/min ratio of one figure was {spread:.2f} "
               f"(thread CPU) and {spread_w:.2f} (wall).", ""]
        # plot
        pdir = f"{work}/runs/plot-{s}"
        os.makedirs(pdir, exist_ok=True)
        for fname, curve, fq in (("ours.dat", ours, None), ("ours_split.dat", split, None),
                                 ("faiss.dat", faiss, None), ("faiss_batch.dat", faiss, "batch")):
            with open(f"{pdir}/{fname}", "w") as fh:
                for c in curve:
                    qc = c["batch_qps_cpu"] if fq else c["qps_cpu"]
                    qw = c["batch_qps_wall"] if fq else c["qps_wall"]
                    fh.write(f"{c['nprobe']} {c['recall']:.5f} {qc:.2f} {qw:.2f}\n")
        png = f"{results}/query_{s}.png" if write else f"{pdir}/query_{s}.png"
        title = f"{name}, nlist {nlist}: recall@10 vs queries/s, one thread, warm ({headers['query']['started'][:10]}, shared machine)"
        top = max(c["recall"] for c in ours + split + faiss)
        xmax = next(x for x in (0.99, 0.995, 0.999, 0.9999, 1) if top <= x)
        subprocess.run(["gnuplot", "-e", f"data='{pdir}'; out='{png}'; title='{title}'; xmax={xmax}", gp],
                       check=True)
        md += [f"![{name} recall vs queries/s]({os.path.basename(png)})", ""]
    out_md["query.md"] = md

def build_report(path):
    return json.load(open(path))

if "encodings" in sections:
    md = run_header("Vector encodings and keys/metadata compression", "encodings")
    md += ["Default builds (`--niter 10 --seed 1 --threads 2`, clusters split as the builder does by default) of "
           "each data set in each encoding; queries measured as in query.md (`bench/bench_query`, one thread, warm "
           "cache) at the index's calibrated default nprobe, two fixed ones, and every cluster (an exact scan of the encoded vectors: its recall loss is the encoding's alone). Index bytes = centroids + data "
           "objects + key map. Recall@10 against the exact ground truth.", ""]
    for s in sets:
        name, nlist, gt = NAMES[s]
        enc = {}
        for e in ("f32", "f16", "i8"):
            files = sorted(glob.glob(f"{work}/runs/e-{s}-{e}-*.tsv"))
            if not files:
                continue
            runs = [read_tsv(f) for f in files]
            rep = build_report(f"{work}/{s}-{e}-nlist{nlist}.build.json")
            ib = int(runs[0][1][0].split("index bytes ")[1])
            enc[e] = (by_probe([r[0] for r in runs]), rep, ib, len(files))
        if not enc:
            continue
        md += [f"## {name} (nlist {nlist} requested)", "",
               "| encoding | nlist after splits | index bytes | vector bytes | vs f32 | calibrated default nprobe (recall at build) |",
               "|---|---:|---:|---:|---:|---:|"]
        f32b = enc["f32"][2] if "f32" in enc else None
        for e, (agg, rep, ib, n) in enc.items():
            md.append(f"| {e} | {rep['nlist']} | {ib:,} | {rep['vectorBytes']:,} | {ib / f32b:.3f} | "
                      f"{rep['defaultNprobe']} ({rep['calibratedRecall']:.3f}) |")
        md += ["", "| encoding | nprobe | recall@10 | recall loss vs f32 | q/s (CPU) | vs f32 | q/s (wall) | vectors scanned |",
               "|---|---:|---:|---:|---:|---:|---:|---:|"]
        base = enc.get("f32")
        for e, (agg, rep, ib, n) in enc.items():
            for i, a in enumerate(agg):
                b = base[0][i] if base else None
                same = b is not None and b["nprobe"] == a["nprobe"]
                loss = f"{b['recall'] - a['recall']:+.4f}" if same else "(other nprobe)"
                label = f"{a['nprobe']}" + (" (default)" if i == 0 else "") + \
                    (" = all, exact scan" if a["nprobe"] == rep["nlist"] else "")
                md.append(f"| {e} | {label} | {a['recall']:.4f} | {loss} | {fmt(a['qps_cpu'])} | "
                          f"{ratio(a['qps_cpu'], b['qps_cpu']) if same else 'n/a'} | {fmt(a['qps_wall'])} | {fmt(a['vectors_scanned'])} |")
        md += ["", f"Medians of {enc[next(iter(enc))][3]} reps.", ""]
    kk = [("GloVe words as keys (340,479 keys, no metadata)", f"{work}/glove-keys-nlist1024.build.json"),
          ("generated JSON Lines: 100,000 GloVe words as keys + metadata {title, year, genre, tags, rating, language, votes}",
           f"{work}/meta100k.build.json")]
    rows = [(l, build_report(p)) for l, p in kk if os.path.exists(p)]
    if rows:
        md += ["## Keys and metadata: raw vs zstd (level 3, one frame per cluster)", "",
               "| input | vectors | raw bytes | stored bytes | stored / raw | saved per vector |", "|---|---:|---:|---:|---:|---:|"]
        for l, r in rows:
            md.append(f"| {l} | {r['count']:,} | {r['keysMetadataRawBytes']:,} | {r['keysMetadataStoredBytes']:,} | "
                      f"{r['keysMetadataStoredBytes'] / r['keysMetadataRawBytes']:.3f} | "
                      f"{(r['keysMetadataRawBytes'] - r['keysMetadataStoredBytes']) / r['count']:.1f} B |")
        md += ["", "The JSON Lines file is generated by bench/bench_query.sh (deterministic seed) from the first 100,000 "
               "GloVe rows; raw = key lengths + keys + metadata lengths + minified metadata JSON as stored in the "
               "cluster blocks before compression.", ""]
    out_md["encodings.md"] = md

for fname, md in out_md.items():
    text = "\n".join(md) + "\n"
    print(text)
    if write:
        path = f"{results}/{fname}"
        open(path, "w").write(keep_notes(path, text))
        print(f"bench_query.sh: wrote {path}", file=sys.stderr)
EOF
