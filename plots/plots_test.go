package plots

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/plotutil"
)

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

func checkSize(t *testing.T, img image.Image, w, h int) {
	t.Helper()
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("image is %d×%d, want %d×%d", b.Dx(), b.Dy(), w, h)
	}
}

// countNear counts pixels within tol (per 8-bit channel) of c.
func countNear(img image.Image, c color.Color, tol int) int {
	cr, cg, cb, _ := c.RGBA()
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if absDiff(r, cr) <= tol && absDiff(g, cg) <= tol && absDiff(bl, cb) <= tol {
				n++
			}
		}
	}
	return n
}

func absDiff(a, b uint32) int {
	d := int(a>>8) - int(b>>8)
	if d < 0 {
		return -d
	}
	return d
}

func nonWhite(img image.Image) int {
	return img.Bounds().Dx()*img.Bounds().Dy() - countNear(img, color.White, 0)
}

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func ramp(n int, f func(i int) float64) []Point {
	pts := make([]Point, n)
	for i := range pts {
		pts[i] = Point{X: float64(i * 20), Y: f(i)}
	}
	return pts
}

func TestLossCurves(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "loss.png")
	a := ramp(200, func(i int) float64 { return 2 * math.Exp(-float64(i)/50) })
	a[10].Y = math.NaN()
	a[11].Y = math.Inf(1)
	a[12].X = math.Inf(-1)
	series := map[string][]Point{
		"a_loss":  a,
		"b_empty": {{0, math.NaN()}, {1, math.Inf(1)}}, // nothing drawable
		"c_loss":  ramp(200, func(i int) float64 { return 1 + 0.5*math.Sin(float64(i)/10) }),
	}
	if err := LossCurves(path, series, "losses"); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, path)
	checkSize(t, img, DefaultWidth, DefaultHeight)
	if n := nonWhite(img); n < 2000 {
		t.Fatalf("only %d non-white pixels", n)
	}
	// Colours follow the sorted series order: a=0, b=1, c=2.
	if n := countNear(img, plotutil.Color(0), 12); n < 100 {
		t.Errorf("series a_loss: %d pixels of its colour", n)
	}
	if n := countNear(img, plotutil.Color(2), 12); n < 100 {
		t.Errorf("series c_loss: %d pixels of its colour", n)
	}
	if n := countNear(img, plotutil.Color(1), 12); n != 0 {
		t.Errorf("all-NaN series b_empty drew %d pixels", n)
	}
	noTempFiles(t, filepath.Dir(path))

	// Overwrite in place, at another size and on a log axis with
	// non-positive values (skipped) and a constant series.
	series["d_const"] = []Point{{0, 0.5}, {10, 0.5}}
	series["a_loss"] = append(series["a_loss"], Point{5000, 0}, Point{5020, -1})
	if err := LossCurves(path, series, "log", WithLogY(), WithSize(320, 200), WithYLabel("loss (log)")); err != nil {
		t.Fatal(err)
	}
	img = decodePNG(t, path)
	checkSize(t, img, 320, 200)
	if n := countNear(img, plotutil.Color(0), 12); n < 20 {
		t.Errorf("log plot: series a_loss: %d pixels of its colour", n)
	}
	noTempFiles(t, filepath.Dir(path))
}

func TestLossCurvesDegenerate(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		series map[string][]Point
		opts   []Option
	}{
		"empty":            {nil, nil},
		"empty log":        {map[string][]Point{"x": {{1, 0}, {2, -3}}}, []Option{WithLogY()}},
		"one point":        {map[string][]Point{"x": {{1, 3}}}, nil},
		"one point log":    {map[string][]Point{"x": {{1, 3}}}, []Option{WithLogY()}},
		"fixed range":      {map[string][]Point{"x": {{1, 3}, {2, 4}}}, []Option{WithYRange(0, 10)}},
		"bad range on log": {map[string][]Point{"x": {{1, 3}, {2, 4}}}, []Option{WithLogY(), WithYRange(-1, 10)}},
	}
	for name, c := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".png")
		if err := LossCurves(path, c.series, name, c.opts...); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		img := decodePNG(t, path)
		checkSize(t, img, DefaultWidth, DefaultHeight)
		if nonWhite(img) == 0 {
			t.Errorf("%s: blank image", name)
		}
	}
	if err := LossCurves(filepath.Join(dir, "x.png"), nil, "", WithSize(0, 10)); err == nil {
		t.Error("size 0×10 accepted")
	}
	// An unwritable destination is an error, not a crash.
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	if err := LossCurves(filepath.Join(blocker, "x.png"), nil, ""); err == nil || !strings.Contains(err.Error(), blocker) {
		t.Errorf("path under a file: err = %v", err)
	}
}

func TestMetricCurves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ap.png")
	series := map[string][]Point{
		"AP":   {{0, 0.05}, {1000, 0.12}, {2000, math.NaN()}, {3000, 0.21}},
		"AP50": {{0, 0.11}, {1000, 0.25}, {2000, 0.33}, {3000, 0.39}},
	}
	if err := MetricCurves(path, series, "COCO AP", WithSize(640, 480)); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, path)
	checkSize(t, img, 640, 480)
	for i := range 2 {
		if n := countNear(img, plotutil.Color(i), 12); n < 50 {
			t.Errorf("series %d: %d pixels of its colour", i, n)
		}
	}
}

// columnHeights returns, for each run of adjacent image columns holding
// pixels of colour c, the largest number of such pixels in one column.
func columnHeights(img image.Image, c color.Color) []int {
	var heights []int
	b := img.Bounds()
	in := false
	for x := b.Min.X; x < b.Max.X; x++ {
		n := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			cr, cg, cb, _ := c.RGBA()
			if absDiff(r, cr) == 0 && absDiff(g, cg) == 0 && absDiff(bl, cb) == 0 {
				n++
			}
		}
		switch {
		case n > 0 && !in:
			heights = append(heights, n)
			in = true
		case n > 0:
			heights[len(heights)-1] = max(heights[len(heights)-1], n)
		default:
			in = false
		}
	}
	return heights
}

func TestBarChart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bars.png")
	groups := []string{"AP", "AP50", "AP75"}
	bars := map[string][]float64{
		"baseline": {10, 20, 30},
		"ssim":     {20, 40, math.NaN()}, // NaN bar is left out
	}
	errs := map[string][]float64{"baseline": {1, 2, math.Inf(1)}}
	if err := BarChart(path, groups, bars, errs, "distillation", "AP (%)", WithSize(600, 400)); err != nil {
		t.Fatal(err)
	}
	img := decodePNG(t, path)
	checkSize(t, img, 600, 400)
	// Bars start at 0, so their pixel heights are proportional to the
	// values. The first run of each colour is its legend swatch.
	hb := columnHeights(img, plotutil.Color(0))
	hs := columnHeights(img, plotutil.Color(1))
	if len(hb) != 4 || len(hs) != 3 {
		t.Fatalf("found %d baseline and %d ssim colour runs, want 3+1 and 2+1 (legend)", len(hb), len(hs))
	}
	// Legend swatches sit at the top right, after the bars in x order
	// only if the legend is right of them: identify bars as the tallest runs.
	hb, hs = dropSmallest(hb), dropSmallest(hs)
	unit := float64(hb[0]) / 10
	for i, want := range []float64{10, 20, 30} {
		if got := float64(hb[i]) / unit; math.Abs(got-want) > 0.6 {
			t.Errorf("baseline bar %d height %.2f units, want %v", i, got, want)
		}
	}
	for i, want := range []float64{20, 40} {
		if got := float64(hs[i]) / unit; math.Abs(got-want) > 0.6 {
			t.Errorf("ssim bar %d height %.2f units, want %v", i, got, want)
		}
	}

	bad := []struct {
		name   string
		groups []string
		bars   map[string][]float64
		errs   map[string][]float64
		want   string
	}{
		{"short bars", groups, map[string][]float64{"m": {1, 2}}, nil, `method "m" has 2 values for 3 groups`},
		{"short errs", groups, map[string][]float64{"m": {1, 2, 3}}, map[string][]float64{"m": {1}}, `method "m" has 1 errors`},
		{"unknown errs", groups, map[string][]float64{"m": {1, 2, 3}}, map[string][]float64{"z": {1, 1, 1}}, `unknown method "z"`},
		{"no groups", nil, map[string][]float64{"m": {}}, nil, "no groups"},
		{"no bars", groups, nil, nil, "no bars"},
	}
	for _, c := range bad {
		err := BarChart(path, c.groups, c.bars, c.errs, "", "")
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: err = %v, want it to mention %q and the path", c.name, err, c.want)
		}
	}
	// All bars NaN: still renders.
	if err := BarChart(path, groups, map[string][]float64{"m": {math.NaN(), math.NaN(), math.NaN()}}, nil, "", ""); err != nil {
		t.Errorf("all-NaN bars: %v", err)
	}
}

// dropSmallest removes the smallest entry (the legend swatch) keeping order.
func dropSmallest(h []int) []int {
	mi := 0
	for i := range h {
		if h[i] < h[mi] {
			mi = i
		}
	}
	return append(append([]int(nil), h[:mi]...), h[mi+1:]...)
}

func TestReadMetricsJSONL(t *testing.T) {
	series, skipped, err := ReadMetricsJSONLStats(filepath.Join("testdata", "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if skipped != 3 {
		t.Errorf("skipped %d lines, want 3", skipped)
	}
	want := map[string][]Point{
		"loss":          {{20, 2.5}, {40, 1.75}, {60, 1.5}},
		"lr":            {{20, 0.01}, {40, 0.02}, {60, 0.02}},
		"loss_dict/cls": {{20, 0.7}, {40, 0.6}},
		"loss_dict/box": {{20, 0.3}},
		"bbox/AP":       {{60, 0.125}},
	}
	if len(series) != len(want) {
		t.Errorf("series %v, want keys of %v", series, want)
	}
	for k, w := range want {
		g := series[k]
		if len(g) != len(w) {
			t.Errorf("%s = %v, want %v", k, g, w)
			continue
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("%s[%d] = %v, want %v", k, i, g[i], w[i])
			}
		}
	}
	if _, err := ReadMetricsJSONL(filepath.Join("testdata", "missing.jsonl")); err == nil {
		t.Error("missing file: no error")
	}
	// Re-plot from the file.
	out := filepath.Join(t.TempDir(), "m.png")
	if err := LossCurves(out, series, "from jsonl", WithLogY()); err != nil {
		t.Fatal(err)
	}
	checkSize(t, decodePNG(t, out), DefaultWidth, DefaultHeight)
}

func TestReplaceNonFinite(t *testing.T) {
	in := `{"a": NaN, "b": -Infinity, "c": Infinity, "s": "NaN and Infinity\" NaN", "d": 1}`
	want := `{"a": null, "b": null, "c": null, "s": "NaN and Infinity\" NaN", "d": 1}`
	if got := string(replaceNonFinite([]byte(in))); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestExtremeValuesDoNotHang: values whose axis range overflows float64
// (a diverged loss of 1e308 next to -1e308, or iterations at ±1e308) are
// left out instead of sending gonum's tick search into an endless loop
// (issue 12). The deadline only detects a hang; it measures nothing.
func TestExtremeValuesDoNotHang(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]Point{
		"y":   {{X: 1, Y: 1e308}, {X: 2, Y: -1e308}, {X: 3, Y: 0.5}},
		"max": {{X: 1, Y: math.MaxFloat64}, {X: 2, Y: -math.MaxFloat64}},
		"x":   {{X: -1e308, Y: 1}, {X: 1e308, Y: 2}, {X: 3, Y: 1}},
	}
	for name, pts := range cases {
		done := make(chan error, 1)
		go func() {
			done <- LossCurves(filepath.Join(dir, name+".png"), map[string][]Point{"loss": pts}, "extreme")
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: LossCurves did not return within a minute (endless tick loop)", name)
		}
	}
}
