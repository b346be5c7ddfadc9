# The chart of scripts/bench_objects.sh, drawn from its CSV (docs/bench-objects/results.csv):
#   gnuplot -e "csv='docs/bench-objects/results.csv'; out='docs/objects-bench.png'" scripts/plot_objects.gp
# Three panels: upload time and download time per size and method (grouped bars, log scale,
# whiskers = one standard deviation), and the overhead of the appliance and dual-control modes
# over plain, in percent, with the 5 % target for the appliance mode. Columns are read by their
# header names, so the order of the CSV's columns does not matter.
if (!exists("csv")) csv = 'docs/bench-objects/results.csv'
if (!exists("out")) out = 'docs/objects-bench.png'
if (!exists("subtitle")) subtitle = ''

set datafile separator ','
set datafile columnheaders
set terminal pngcairo size 1400,1250 font 'sans,10' noenhanced
set output out

# Bars: four methods per size, at size_index + offset.
bw = 0.2
mi(m) = (m eq 'plain') ? 0 : (m eq 'appliance') ? 1 : (m eq 'dual') ? 2 : 3
xpos(m) = column('size_index') + (mi(m) - 1.5) * bw
is(m) = strcol('method') eq m
methods = 'plain appliance dual awscli'
array colour[4] = ['#7f7f7f', '#1f77b4', '#d62728', '#2ca02c']

stats csv using (column('size_index')) nooutput
nsizes = STATS_max + 1
stats csv using (column('upload_median_s') < column('download_median_s') ? column('upload_median_s') : column('download_median_s')) nooutput name 'T'
ymin = 10 ** floor(log10(T_min * 0.9))
stats csv using (column('upload_median_s') > column('download_median_s') ? column('upload_median_s') + column('upload_stddev_s') : column('download_median_s') + column('download_stddev_s')) nooutput name 'U'
ymax = 10 ** ceil(log10(U_max * 1.1))
# Overhead of the encrypted modes (not awscli) over plain, in percent. All stats run before any
# range is set: stats skips points outside a fixed range.
enc = "(strcol('method') eq 'appliance' || strcol('method') eq 'dual')"
stats csv using (@enc ? (column('upload_vs_plain') - 1) * 100 : NaN) nooutput name 'OU'
stats csv using (@enc ? (column('download_vs_plain') - 1) * 100 : NaN) nooutput name 'OD'
omax = (OU_max > OD_max ? OU_max : OD_max)
omin = (OU_min < OD_min ? OU_min : OD_min)

set xrange [-0.5 : nsizes - 0.5]
set xtics scale 0
set grid ytics mytics lc rgb '#dddddd'
set key outside right top vertical
set lmargin at screen 0.07
set rmargin at screen 0.85
set style fill solid 0.85 border lc rgb '#333333'

set multiplot layout 3,1 title 'custos put / get of encrypted objects vs plain (s3rver on loopback)' . (subtitle ne '' ? "\n" . subtitle : '')

lo(m, sd) = m - sd > ymin ? m - sd : ymin
do for [panel in 'upload download'] {
  mc = panel . '_median_s'
  sc = panel . '_stddev_s'
  set title panel . ' time (median of the runs, whiskers: 1 stddev)'
  set logscale y
  set yrange [ymin : ymax]
  set ylabel 'seconds (log scale)'
  set format y '%g'
  plot for [i = 1:4] csv \
         using (xpos(word(methods, i))) : (is(word(methods, i)) ? column(mc) : NaN) : \
               (xpos(word(methods, i)) - bw / 2) : (xpos(word(methods, i)) + bw / 2) : (ymin) : \
               (is(word(methods, i)) ? column(mc) : NaN) \
         with boxxyerror lc rgb colour[i] title word(methods, i), \
       for [i = 1:4] csv \
         using (xpos(word(methods, i))) : (is(word(methods, i)) ? lo(column(mc), column(sc)) : NaN) : \
               (0) : (column(mc) + column(sc) - lo(column(mc), column(sc))) \
         with vectors nohead lw 1.5 lc rgb '#000000' notitle, \
       csv using (column('size_index')) : (NaN) : xticlabels(strcol('size')) notitle
  unset logscale y
}

# Overhead over plain, percent: appliance upload/download, dual upload/download.
set title 'overhead over plain: (median / plain median - 1) x 100; dashed line: the 5 % target for appliance mode, objects >= 16 MiB'
set ylabel 'percent'
set format y '%g %%'
# Small objects can cost several times plain (one KMS or keeper round trip on a tiny transfer):
# the axis stops at 50 % and every bar carries its value.
ytop = (omax * 1.2 > 50 ? 50 : (omax * 1.2 < 10 ? 10 : omax * 1.2))
ybot = (omin < -5 ? omin * 1.2 - 2 : -7)
set yrange [ybot : ytop]
set arrow 1 from graph 0, first 5 to graph 1, first 5 nohead dt 2 lw 1.5 lc rgb '#d62728' front
set arrow 2 from graph 0, first 0 to graph 1, first 0 nohead lw 1 lc rgb '#333333' front
ow = 0.2
array oname[4] = ['appliance upload', 'appliance download', 'dual upload', 'dual download']
array ometh[4] = ['appliance', 'appliance', 'dual', 'dual']
array ocol[4] = ['upload_vs_plain', 'download_vs_plain', 'upload_vs_plain', 'download_vs_plain']
array ocolour[4] = ['#1f77b4', '#9ecae1', '#d62728', '#fc9f9a']
ox(i) = column('size_index') + (i - 2.5) * ow
oval(i) = is(ometh[i]) ? (column(ocol[i]) - 1) * 100 : NaN
clip(v) = v > ytop ? ytop : v
# A value's label sits just past the end of its bar, or inside the bar when the bar reaches the
# end of the axis.
lpad = (ytop - ybot) * 0.035
labely(v) = (v >= 0) ? (v + lpad > ytop ? ytop - lpad : v + lpad) : (v - lpad < ybot ? ybot + lpad : v - lpad)
plot for [i = 1:4] csv \
       using (ox(i)) : (clip(oval(i))) : (ox(i) - ow / 2) : (ox(i) + ow / 2) : (0) : (clip(oval(i))) \
       with boxxyerror lc rgb ocolour[i] title oname[i], \
     for [i = 1:4] csv \
       using (ox(i)) : (labely(oval(i))) : \
             (sprintf(abs(oval(i)) >= 100 ? '%+.0f' : '%+.1f', oval(i))) \
       with labels font 'sans,8' notitle, \
     csv using (column('size_index')) : (NaN) : xticlabels(strcol('size')) notitle

unset multiplot
