# bench/plot_recall_qps.gp: recall@10 vs single-thread queries/s, ours beside FAISS IVFFlat (one data set).
# Called by bench/bench_query.sh:
#   gnuplot -e "data='DIR'; out='FILE.png'; title='...'; xmax=0.999" bench/plot_recall_qps.gp
# (xmax: the right end of the recall axis, 1 by default)
# DIR holds one whitespace-separated file per curve, rows sorted by nprobe, columns:
#   nprobe recall qps_thread_cpu qps_wall
# ours.dat (ours, nlist exactly as FAISS), ours_split.dat (ours, default build: big clusters split),
# faiss.dat (FAISS, one query per call), faiss_batch.dat (FAISS, all queries in one call: context only).
# Two panels: queries/s per second of this thread's CPU time (steady on a shared machine) and per
# second of wall-clock time (what a caller sees, noisy when other processes compete for the cores).
if (!exists("data")) data = "."
if (!exists("out")) out = "recall_qps.png"
if (!exists("title")) title = "recall@10 vs queries/s"
if (!exists("xmax")) xmax = 1

set terminal pngcairo size 1400,560 font "sans,10" noenhanced
set output out
set multiplot layout 1,2 title title font "sans,12"
set logscale y
set grid xtics ytics mytics lc rgb "#dddddd"
# x: recall on a "nines" scale (distance from 1 on a log scale, shifted by 3e-5 so that a recall of 1,
# no miss in 10,000 neighbours, has a place), so 0.9, 0.99 and 0.999 are evenly spaced
set xrange [0.2:xmax]
set nonlinear x via -log10(1 + 3e-5 - x) inverse 1 + 3e-5 - 10**(-x)
set xtics ("0.2" 0.2, "0.5" 0.5, "0.8" 0.8, "0.9" 0.9, "0.95" 0.95, "0.99" 0.99, "0.995" 0.995, "0.999" 0.999, "0.9999" 0.9999, "1" 1)
set xlabel "recall@10 (log scale of 1 - recall)"
set key bottom left box opaque font ",9"
set style line 1 lc rgb "#1f77b4" lw 2 pt 7 ps 1.0
set style line 2 lc rgb "#2ca02c" lw 2 pt 9 ps 1.0
set style line 3 lc rgb "#d62728" lw 2 pt 5 ps 1.0
set style line 4 lc rgb "#d62728" lw 1 dt 2 pt 4 ps 0.8

do for [col in "3 4"] {
    c = int(col)
    set ylabel (c == 3 ? "queries/s, one thread (per thread-CPU second)" : "queries/s, one thread (wall clock)")
    plot data."/ours.dat" using 2:c with linespoints ls 1 title "s3vec (nlist as FAISS)", \
         data."/ours_split.dat" using 2:c with linespoints ls 2 title "s3vec (default build, big clusters split)", \
         data."/faiss.dat" using 2:c with linespoints ls 3 title "FAISS IVFFlat, one query per call", \
         data."/faiss_batch.dat" using 2:c with linespoints ls 4 title "FAISS IVFFlat, batched (context)", \
         data."/ours.dat" using 2:c:(sprintf("%d", $1)) with labels offset char 0,0.9 font ",8" tc ls 1 notitle
}
unset multiplot
