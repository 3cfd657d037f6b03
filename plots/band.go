package plots

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
)

// Band is a curve over several runs: at each X the mean and a band
// [Lo, Hi] (for instance mean ± std over seeds, or min and max).
type Band struct {
	X, Mean, Lo, Hi []float64
}

// BandCurves draws, per series, the mean as a line with markers over a
// translucent band from Lo to Hi, with a legend, and writes the chart as a
// PNG to path (options as for MetricCurves). Points with a non-finite
// value are skipped.
func BandCurves(path string, series map[string]Band, title string, opts ...Option) error {
	o, err := buildOptions(defaultOptions("iteration", "AP"), opts)
	if err != nil {
		return fmt.Errorf("plots: %s: %w", path, err)
	}
	p := newPlot(title, o)
	for i, name := range sortedKeys(series) {
		b := series[name]
		if len(b.Mean) != len(b.X) || len(b.Lo) != len(b.X) || len(b.Hi) != len(b.X) {
			return fmt.Errorf("plots: %s: series %q has %d x, %d mean, %d lo, %d hi values", path, name, len(b.X), len(b.Mean), len(b.Lo), len(b.Hi))
		}
		var mean plotter.XYs
		var upper, lower plotter.XYs
		for k, x := range b.X {
			if !finite(x) || !finite(b.Mean[k]) {
				continue
			}
			mean = append(mean, plotter.XY{X: x, Y: b.Mean[k]})
			if finite(b.Lo[k]) && finite(b.Hi[k]) {
				upper = append(upper, plotter.XY{X: x, Y: b.Hi[k]})
				lower = append(lower, plotter.XY{X: x, Y: b.Lo[k]})
			}
		}
		if len(mean) == 0 {
			continue
		}
		c := plotutil.Color(i)
		if len(upper) > 1 {
			ring := append(plotter.XYs{}, upper...)
			for k := len(lower) - 1; k >= 0; k-- {
				ring = append(ring, lower[k])
			}
			poly, err := plotter.NewPolygon(ring)
			if err != nil {
				return fmt.Errorf("plots: %s: %w", path, err)
			}
			r, g, bl, _ := c.RGBA()
			poly.Color = color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 50}
			poly.LineStyle.Width = 0
			p.Add(poly)
		}
		line, points, err := plotter.NewLinePoints(mean)
		if err != nil {
			return fmt.Errorf("plots: %s: %w", path, err)
		}
		line.Color, points.Color = c, c
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(name, line, points)
	}
	applyYRange(p, o)
	return save(path, p, o)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
