// Package plots draws PNG charts of training runs with gonum.org/v1/plot:
// loss curves, metric (AP) curves and grouped bar charts with error bars,
// plus a reader for the metrics.jsonl log a training run writes.
//
// Every function writes its PNG atomically (a temporary file in the same
// directory, then a rename), so a reader never sees a half-written image.
// Non-finite values (NaN, ±Inf) are skipped, never drawn and never fatal.
package plots

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Point is one (x, y) sample of a series; x is usually the iteration.
type Point struct {
	X, Y float64
}

// Default image size in pixels.
const (
	DefaultWidth  = 800
	DefaultHeight = 500
)

// dpi of the rendered PNGs: one pixel is 1/dpi inch.
const dpi = 96

type options struct {
	width, height  int
	logY           bool
	xLabel, yLabel string
	yMin, yMax     float64 // NaN: automatic
}

// Option adjusts a chart.
type Option func(*options)

// WithSize sets the image size in pixels (default 800×500).
func WithSize(width, height int) Option {
	return func(o *options) { o.width, o.height = width, height }
}

// WithLogY draws the y axis on a log scale; points with y <= 0 are then
// skipped (they have no place on a log axis).
func WithLogY() Option { return func(o *options) { o.logY = true } }

// WithXLabel sets the x-axis label.
func WithXLabel(s string) Option { return func(o *options) { o.xLabel = s } }

// WithYLabel sets the y-axis label.
func WithYLabel(s string) Option { return func(o *options) { o.yLabel = s } }

// WithYRange fixes the y-axis range (ignored on a log axis unless both are > 0).
func WithYRange(min, max float64) Option {
	return func(o *options) { o.yMin, o.yMax = min, max }
}

func buildOptions(defaults options, opts []Option) (options, error) {
	o := defaults
	for _, f := range opts {
		f(&o)
	}
	if o.width < 16 || o.height < 16 || o.width > 20000 || o.height > 20000 {
		return o, fmt.Errorf("image size %d×%d out of range [16, 20000]", o.width, o.height)
	}
	return o, nil
}

func defaultOptions(xLabel, yLabel string) options {
	return options{width: DefaultWidth, height: DefaultHeight, xLabel: xLabel, yLabel: yLabel, yMin: math.NaN(), yMax: math.NaN()}
}

// LossCurves draws one line per series (x = iteration, y = value) with a
// legend, and writes the chart as a PNG to path. Series are drawn in sorted
// name order. Options: WithLogY, WithSize, WithXLabel, WithYLabel, WithYRange.
func LossCurves(path string, series map[string][]Point, title string, opts ...Option) error {
	o, err := buildOptions(defaultOptions("iteration", "loss"), opts)
	if err != nil {
		return fmt.Errorf("plots: %s: %w", path, err)
	}
	return curves(path, series, title, o, false)
}

// MetricCurves draws metric series (such as AP evaluated every N
// iterations) as lines with a marker at each evaluation, with a legend,
// and writes the chart as a PNG to path. It takes the same options as
// LossCurves.
func MetricCurves(path string, series map[string][]Point, title string, opts ...Option) error {
	o, err := buildOptions(defaultOptions("iteration", "AP"), opts)
	if err != nil {
		return fmt.Errorf("plots: %s: %w", path, err)
	}
	return curves(path, series, title, o, true)
}

// maxPlottable bounds the magnitude of a drawn coordinate: beyond it the
// axis range (max - min) can overflow to +Inf, and gonum/plot's tick
// search then never ends.
const maxPlottable = 1e300

// plottable reports whether v is finite and within ±maxPlottable.
func plottable(v float64) bool { return !math.IsNaN(v) && math.Abs(v) <= maxPlottable }

// finitePoints returns the points of pts with plottable x and y (finite,
// |v| <= 1e300; and y > 0 on a log axis).
func finitePoints(pts []Point, logY bool) plotter.XYs {
	xys := make(plotter.XYs, 0, len(pts))
	for _, p := range pts {
		if !plottable(p.X) || !plottable(p.Y) {
			continue
		}
		if logY && p.Y <= 0 {
			continue
		}
		xys = append(xys, plotter.XY{X: p.X, Y: p.Y})
	}
	return xys
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func newPlot(title string, o options) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = o.xLabel
	p.Y.Label.Text = o.yLabel
	p.Add(plotter.NewGrid())
	return p
}

func curves(path string, series map[string][]Point, title string, o options, markers bool) error {
	p := newPlot(title, o)
	p.Legend.Top = true
	// Losses fall (top right is free); metrics rise (top left is free).
	p.Legend.Left = markers
	p.Legend.XOffs = vg.Points(-8)
	if markers {
		p.Legend.XOffs = vg.Points(8)
	}
	if o.logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{}
	}
	drawn := 0
	for i, name := range sortedKeys(series) {
		xys := finitePoints(series[name], o.logY)
		if len(xys) == 0 {
			continue // nothing drawable; leave it out of the legend too
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plots: %s: series %q: %w", path, name, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		thumbs := []plot.Thumbnailer{l}
		if markers || len(xys) == 1 {
			s, err := plotter.NewScatter(xys)
			if err != nil {
				return fmt.Errorf("plots: %s: series %q: %w", path, name, err)
			}
			s.Color = l.Color
			s.Shape = plotutil.Shape(i)
			s.Radius = vg.Points(2.5)
			p.Add(s)
			thumbs = append(thumbs, s)
		}
		p.Legend.Add(name, thumbs...)
		drawn++
	}
	if drawn == 0 {
		// An empty chart still renders (axes and title): callers re-plot
		// on a schedule and may have nothing to show yet.
		p.X.Min, p.X.Max = 0, 1
		p.Y.Min, p.Y.Max = 0, 1
		if o.logY {
			p.Y.Min, p.Y.Max = 0.1, 1
		}
	}
	applyYRange(p, o)
	return save(path, p, o)
}

func applyYRange(p *plot.Plot, o options) {
	if !math.IsNaN(o.yMin) && !math.IsNaN(o.yMax) && o.yMin < o.yMax && (!o.logY || o.yMin > 0) {
		p.Y.Min, p.Y.Max = o.yMin, o.yMax
	}
	if o.logY && p.Y.Min == p.Y.Max {
		// One distinct value: gonum would widen by ±1, possibly to <= 0.
		p.Y.Min, p.Y.Max = p.Y.Min/2, p.Y.Max*2
	}
}

// save renders p at the requested pixel size and writes it atomically.
func save(path string, p *plot.Plot, o options) (err error) {
	defer func() {
		// gonum/plot panics on some degenerate inputs; report, never crash.
		if r := recover(); r != nil {
			err = fmt.Errorf("plots: %s: rendering failed: %v", path, r)
		}
	}()
	w := vg.Length(o.width) * vg.Inch / dpi
	h := vg.Length(o.height) * vg.Inch / dpi
	c := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	p.Draw(draw.New(c))
	return writeAtomic(path, func(f *os.File) error {
		_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(f)
		return err
	})
}

// writeAtomic writes path via a temporary file in the same directory and a
// rename, creating the directory if needed.
func writeAtomic(path string, write func(*os.File) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plots: %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("plots: %s: %w", path, err)
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("plots: write %s: %w", path, err)
	}
	return nil
}

// BarChart draws grouped bars: one group per entry of groups (on the x
// axis), one bar per method (key of bars, sorted, with a legend) inside
// each group, each with an error bar of ± errs[method][i] (for example
// mean ± std over seeds). bars[m] and errs[m] must have len(groups)
// entries; errs may be nil or lack a method (no error bars then). NaN or
// infinite bar values are left out; NaN, infinite or negative errors draw
// no error bar. ylabel labels the y axis. Options: WithSize, WithYRange.
func BarChart(path string, groups []string, bars map[string][]float64, errs map[string][]float64, title, ylabel string, opts ...Option) error {
	o, err := buildOptions(defaultOptions("", ylabel), opts)
	if err != nil {
		return fmt.Errorf("plots: %s: %w", path, err)
	}
	if o.logY {
		return fmt.Errorf("plots: %s: log scale is not supported for bar charts", path)
	}
	if len(groups) == 0 {
		return fmt.Errorf("plots: %s: no groups", path)
	}
	if len(bars) == 0 {
		return fmt.Errorf("plots: %s: no bars", path)
	}
	methods := sortedKeys(bars)
	for _, m := range methods {
		if len(bars[m]) != len(groups) {
			return fmt.Errorf("plots: %s: method %q has %d values for %d groups", path, m, len(bars[m]), len(groups))
		}
		if e, ok := errs[m]; ok && e != nil && len(e) != len(groups) {
			return fmt.Errorf("plots: %s: method %q has %d errors for %d groups", path, m, len(e), len(groups))
		}
	}
	for m := range errs {
		if _, ok := bars[m]; !ok {
			return fmt.Errorf("plots: %s: errors given for unknown method %q", path, m)
		}
	}

	p := newPlot(title, o)
	p.Legend.Top = true
	p.NominalX(groups...)
	const groupWidth = 0.8
	bw := groupWidth / float64(len(methods))
	for j, m := range methods {
		gb := &groupedBars{color: plotutil.Color(j)}
		for i := range groups {
			v := bars[m][i]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			e := math.NaN()
			if errs[m] != nil {
				e = errs[m][i]
			}
			if math.IsInf(e, 0) || e < 0 {
				e = math.NaN()
			}
			x := float64(i) - groupWidth/2 + (float64(j)+0.5)*bw
			gb.bars = append(gb.bars, bar{x0: x - bw/2*0.9, x1: x + bw/2*0.9, y: v, err: e})
		}
		p.Add(gb)
		p.Legend.Add(m, gb)
	}
	// Show the whole of every group even when its outer bars are missing.
	p.X.Min = math.Min(p.X.Min, -0.5)
	p.X.Max = math.Max(p.X.Max, float64(len(groups))-0.5)
	// Headroom for the legend above the tallest bar.
	p.Y.Max += 0.15 * (p.Y.Max - p.Y.Min)
	applyYRange(p, o)
	return save(path, p, o)
}

type bar struct {
	x0, x1, y, err float64 // err NaN: no error bar
}

// groupedBars is a plot.Plotter drawing one method's bars (from 0 to y)
// and their error bars, in data coordinates.
type groupedBars struct {
	bars  []bar
	color color.Color
}

// Plot implements plot.Plotter.
func (g *groupedBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, b := range g.bars {
		x0, x1 := trX(b.x0), trX(b.x1)
		y0, y1 := trY(0), trY(b.y)
		rect := []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}}
		c.FillPolygon(g.color, c.ClipPolygonXY(rect))
		outline := draw.LineStyle{Color: color.Black, Width: vg.Points(0.5)}
		c.StrokeLines(outline, c.ClipLinesXY(append(rect, rect[0]))...)
		if math.IsNaN(b.err) {
			continue
		}
		xm := (x0 + x1) / 2
		capW := (x1 - x0) / 4
		lo, hi := trY(b.y-b.err), trY(b.y+b.err)
		es := draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
		c.StrokeLines(es, c.ClipLinesXY(
			[]vg.Point{{X: xm, Y: lo}, {X: xm, Y: hi}},
			[]vg.Point{{X: xm - capW, Y: lo}, {X: xm + capW, Y: lo}},
			[]vg.Point{{X: xm - capW, Y: hi}, {X: xm + capW, Y: hi}},
		)...)
	}
}

// DataRange implements plot.DataRanger: it spans the bars, 0, and the
// error bars.
func (g *groupedBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	ymin, ymax = 0, 0
	for _, b := range g.bars {
		xmin, xmax = math.Min(xmin, b.x0), math.Max(xmax, b.x1)
		lo, hi := b.y, b.y
		if !math.IsNaN(b.err) {
			lo, hi = b.y-b.err, b.y+b.err
		}
		ymin, ymax = math.Min(ymin, lo), math.Max(ymax, hi)
	}
	if len(g.bars) == 0 {
		xmin, xmax = 0, 0
	}
	return xmin, xmax, ymin, ymax
}

// Thumbnail implements plot.Thumbnailer: a filled square in the bar colour.
func (g *groupedBars) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y},
		{X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y},
	}
	c.FillPolygon(g.color, c.ClipPolygonY(pts))
}
