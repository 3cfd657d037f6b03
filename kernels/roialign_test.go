package kernels

import (
	"math"
	"strings"
	"testing"

	"github.com/skd-go/skd/internal/detrand"
	"github.com/skd-go/skd/internal/golden"
)

// The golden file is written by scripts/golden_roialign.py (torchvision
// 0.14 roi_align forward and autograd backward); it lives beside the
// MultiScaleRoIAlign op's test data.
const roiGolden = "../layers/testdata/roialign"

func TestRoIAlignGoldenTorchvision(t *testing.T) {
	gf, err := golden.Load(roiGolden)
	if err != nil {
		t.Fatal(err)
	}
	n, c, h, w := 2, 3, 10, 13
	rois := gf.Arrays["kernel/rois"].Data
	if gf.Arrays["kernel/rois"].Step != 1 {
		t.Fatal("rois subsampled")
	}
	k := len(rois) / 5
	feat := detrand.Symmetric("roialign/feat", n*c*h*w, 1)
	cases, _ := gf.Meta["kernel_cases"].([]any)
	if len(cases) != 6 {
		t.Fatalf("%d kernel cases in the golden file, want 6", len(cases))
	}
	for _, ci := range cases {
		m := ci.(map[string]any)
		name := m["name"].(string)
		p := RoIAlignParams{
			PooledH: int(m["ph"].(float64)), PooledW: int(m["pw"].(float64)),
			SpatialScale: float32(m["scale"].(float64)), SamplingRatio: int(m["sampling"].(float64)),
			Aligned: m["aligned"].(bool),
		}
		t.Run(name, func(t *testing.T) {
			out := make([]float32, k*c*p.PooledH*p.PooledW)
			for i := range out {
				out[i] = float32(math.NaN()) // every element must be written
			}
			if err := RoIAlignForward(p, feat, n, c, h, w, rois, out); err != nil {
				t.Fatal(err)
			}
			ref := gf.Arrays["kernel/"+name+"/out"]
			if ref.Step != 1 {
				t.Fatal("golden output subsampled")
			}
			maxErr, scale, err := ref.Compare(out)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("forward: max abs error %.3g (reference max %.3g)", maxErr, scale)
			if !(maxErr <= 1e-5*scale) {
				t.Errorf("forward: max abs error %.3g > 1e-5 x %.3g", maxErr, scale)
			}
			r := detrand.Symmetric("roialign/R/"+name, len(out), 1)
			dfeat := make([]float32, len(feat))
			if err := RoIAlignBackward(p, r, n, c, h, w, rois, dfeat); err != nil {
				t.Fatal(err)
			}
			ref = gf.Arrays["kernel/"+name+"/dfeat"]
			maxErr, scale, err = ref.Compare(dfeat)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("backward: max abs error %.3g (reference max %.3g)", maxErr, scale)
			if !(maxErr <= 1e-5*scale) {
				t.Errorf("backward: max abs error %.3g > 1e-5 x %.3g", maxErr, scale)
			}
			// accumulation: a second call adds the same gradient again
			if err := RoIAlignBackward(p, r, n, c, h, w, rois, dfeat); err != nil {
				t.Fatal(err)
			}
			for i, v := range dfeat {
				want := 2 * ref.Data[i/ref.Step]
				if i%ref.Step == 0 && math.Abs(float64(v-want)) > 2e-5*scale {
					t.Fatalf("backward does not accumulate: element %d is %g, want %g", i, v, want)
				}
			}
		})
	}
}

// bilinearRef is an independent float64 RoIAlign written from the
// definition: the average over the sampling grid of each bin of the
// bilinear interpolation of the map, zero outside [-1, size], clamped at
// the borders.
func bilinearRef(p RoIAlignParams, feat []float32, c, h, w int, roi []float32) []float64 {
	out := make([]float64, c*p.PooledH*p.PooledW)
	if roi[0] < 0 {
		return out
	}
	off := 0.0
	if p.Aligned {
		off = 0.5
	}
	s := float64(p.SpatialScale)
	x0, y0 := float64(roi[1])*s-off, float64(roi[2])*s-off
	rw, rh := float64(roi[3])*s-off-x0, float64(roi[4])*s-off-y0
	if !p.Aligned {
		rw, rh = math.Max(rw, 1), math.Max(rh, 1)
	}
	gh, gw := p.SamplingRatio, p.SamplingRatio
	if gh <= 0 {
		gh, gw = int(math.Ceil(rh/float64(p.PooledH))), int(math.Ceil(rw/float64(p.PooledW)))
	}
	at := func(plane []float32, y, x float64) float64 {
		if y < -1 || y > float64(h) || x < -1 || x > float64(w) {
			return 0
		}
		y, x = math.Max(y, 0), math.Max(x, 0)
		yl, xl := int(y), int(x)
		yh, xh := yl+1, xl+1
		if yl >= h-1 {
			yl, yh, y = h-1, h-1, float64(h-1)
		}
		if xl >= w-1 {
			xl, xh, x = w-1, w-1, float64(w-1)
		}
		ly, lx := y-float64(yl), x-float64(xl)
		return (1-ly)*(1-lx)*float64(plane[yl*w+xl]) + (1-ly)*lx*float64(plane[yl*w+xh]) +
			ly*(1-lx)*float64(plane[yh*w+xl]) + ly*lx*float64(plane[yh*w+xh])
	}
	b := int(roi[0])
	for ch := 0; ch < c; ch++ {
		plane := feat[(b*c+ch)*h*w : (b*c+ch+1)*h*w]
		for i := 0; i < p.PooledH; i++ {
			for j := 0; j < p.PooledW; j++ {
				sum := 0.0
				for iy := 0; iy < gh; iy++ {
					y := y0 + (float64(i)+(float64(iy)+0.5)/float64(gh))*rh/float64(p.PooledH)
					for ix := 0; ix < gw; ix++ {
						x := x0 + (float64(j)+(float64(ix)+0.5)/float64(gw))*rw/float64(p.PooledW)
						sum += at(plane, y, x)
					}
				}
				out[(ch*p.PooledH+i)*p.PooledW+j] = sum / math.Max(float64(gh*gw), 1)
			}
		}
	}
	return out
}

// TestRoIAlignReference checks the kernel against the float64 definition
// and its backward against the forward by the adjoint identity
// <forward(f), g> = <f, backward(g)> (RoIAlign is linear in f).
func TestRoIAlignReference(t *testing.T) {
	n, c, h, w := 2, 4, 9, 11
	feat := detrand.Symmetric("roialign/test/feat", n*c*h*w, 1)
	u := detrand.Uniform("roialign/test/rois", 40*4)
	var rois []float32
	for i := 0; i < 40; i++ {
		x1, y1 := -6+26*u[4*i], -6+22*u[4*i+1]
		rois = append(rois, float32(i%2), float32(x1), float32(y1), float32(x1+0.2+14*u[4*i+2]), float32(y1+0.2+12*u[4*i+3]))
	}
	rois = append(rois, -1, 1, 1, 5, 5) // padding
	k := len(rois) / 5
	for _, p := range []RoIAlignParams{
		{PooledH: 7, PooledW: 7, SpatialScale: 0.5, SamplingRatio: 2},
		{PooledH: 4, PooledW: 3, SpatialScale: 0.5, SamplingRatio: 0, Aligned: true},
		{PooledH: 2, PooledW: 5, SpatialScale: 1, SamplingRatio: 0},
	} {
		bins := p.PooledH * p.PooledW
		out := make([]float32, k*c*bins)
		if err := RoIAlignForward(p, feat, n, c, h, w, rois, out); err != nil {
			t.Fatal(err)
		}
		for r := 0; r < k; r++ {
			ref := bilinearRef(p, feat, c, h, w, rois[r*5:r*5+5])
			for i, want := range ref {
				if got := float64(out[r*c*bins+i]); math.Abs(got-want) > 1e-5 {
					t.Fatalf("%+v region %d element %d: %g, reference %g", p, r, i, got, want)
				}
			}
		}
		g := detrand.Symmetric("roialign/test/g", len(out), 1)
		df := make([]float32, len(feat))
		if err := RoIAlignBackward(p, g, n, c, h, w, rois, df); err != nil {
			t.Fatal(err)
		}
		var lhs, rhs float64
		for i := range out {
			lhs += float64(out[i]) * float64(g[i])
		}
		for i := range feat {
			rhs += float64(feat[i]) * float64(df[i])
		}
		if math.Abs(lhs-rhs) > 1e-4*(1+math.Abs(lhs)) {
			t.Errorf("%+v: <forward(f), g> = %g but <f, backward(g)> = %g", p, lhs, rhs)
		}
	}
}

func TestRoIAlignPaddingAndRows(t *testing.T) {
	n, c, h, w := 1, 2, 6, 6
	feat := detrand.Symmetric("roialign/test/pad", n*c*h*w, 1)
	p := RoIAlignParams{PooledH: 2, PooledW: 2, SpatialScale: 1, SamplingRatio: 2}
	rois := []float32{0, 1, 1, 4, 4, -1, 1, 1, 4, 4, 0, 0, 0, 6, 6}
	out := make([]float32, 3*c*4)
	for i := range out {
		out[i] = 7
	}
	if err := RoIAlignForward(p, feat, n, c, h, w, rois, out); err != nil {
		t.Fatal(err)
	}
	for i := 8; i < 16; i++ {
		if out[i] != 0 {
			t.Fatalf("padding row output %v, want zeros", out[8:16])
		}
	}
	if out[0] == 0 || out[16] == 0 {
		t.Fatal("real rows gave zero")
	}
	// rows variant: only row 2 is written
	part := make([]float32, len(out))
	for i := range part {
		part[i] = 7
	}
	if err := RoIAlignForwardRows(p, feat, n, c, h, w, rois, []int32{2}, part); err != nil {
		t.Fatal(err)
	}
	for i := range part {
		want := float32(7)
		if i >= 16 {
			want = out[i]
		}
		if part[i] != want {
			t.Fatalf("rows variant element %d: %g, want %g", i, part[i], want)
		}
	}
	// the padding row gives no gradient, even with a non-zero dout
	dout := make([]float32, len(out))
	for i := 8; i < 16; i++ {
		dout[i] = 1
	}
	df := make([]float32, len(feat))
	if err := RoIAlignBackward(p, dout, n, c, h, w, rois, df); err != nil {
		t.Fatal(err)
	}
	for _, v := range df {
		if v != 0 {
			t.Fatal("padding row produced a gradient")
		}
	}
}

func TestRoIAlignErrors(t *testing.T) {
	p := RoIAlignParams{PooledH: 2, PooledW: 2, SpatialScale: 1, SamplingRatio: 0}
	feat := make([]float32, 1*1*4*4)
	out := make([]float32, 4)
	for _, c := range []struct {
		name string
		rois []float32
		out  []float32
		want string
	}{
		{"batch", []float32{1, 0, 0, 2, 2}, out, "batch index 1"},
		{"nan", []float32{float32(math.NaN()), 0, 0, 2, 2}, out, "NaN batch index"},
		{"cols", []float32{0, 0, 0, 2}, out, "multiple of 5"},
		{"outlen", []float32{0, 0, 0, 2, 2}, out[:3], "pooled tensor"},
		{"huge", []float32{0, 0, 0, 1e9, 1e9}, out, "too large"},
	} {
		err := RoIAlignForward(p, feat, 1, 1, 4, 4, c.rois, c.out)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	if err := RoIAlignForwardRows(p, feat, 1, 1, 4, 4, []float32{0, 0, 0, 2, 2}, []int32{1}, out); err == nil {
		t.Error("row out of range accepted")
	}
	if err := RoIAlignForward(RoIAlignParams{}, feat, 1, 1, 4, 4, []float32{0, 0, 0, 2, 2}, out); err == nil {
		t.Error("zero pooled size accepted")
	}
}

func TestRoIAlignSteadyStateAllocs(t *testing.T) {
	n, c, h, w := 1, 16, 20, 20
	feat := detrand.Symmetric("roialign/test/alloc", n*c*h*w, 1)
	p := RoIAlignParams{PooledH: 7, PooledW: 7, SpatialScale: 0.5, SamplingRatio: 2}
	var rois []float32
	for i := 0; i < 64; i++ {
		rois = append(rois, 0, float32(i%20), float32(i%13), float32(i%20+10), float32(i%13+15))
	}
	out := make([]float32, 64*c*49)
	df := make([]float32, len(feat))
	run := func() {
		_ = RoIAlignForward(p, feat, n, c, h, w, rois, out)
		_ = RoIAlignBackward(p, out, n, c, h, w, rois, df)
	}
	run()
	// only the goroutines of the parallel split may allocate (a handful of
	// small objects), never the per-region scratch
	if a := testing.AllocsPerRun(5, run); a > 16 {
		t.Errorf("%.0f allocations per forward+backward in steady state", a)
	}
}
