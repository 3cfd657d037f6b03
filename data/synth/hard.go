package synth

import (
	"image"
	"math"
	"math/rand/v2"
)

// The "hard" variant (Options.Variant) is a benchmark on which a bigger
// detector keeps a clear lead over a small one, so that a distillation
// study has something to transfer. Its 16 classes are four base shapes
// (circle, square, triangle, cross) times four details that only fine
// features tell apart:
//
//	plain    the base shape in one colour
//	notched  a slot cut into one side (a cross: one arm cut short)
//	striped  stripes of a second colour across the shape (0.25 r wide)
//	dotted   a central disc of a second colour (radius 0.3 r)
//
// A scene holds 4 to 10 objects whose bounding diameters are log-uniform
// in [12, min(200, 0.75 short side)] pixels (tiny to large), drawn in
// random depth order with 3 to 10 clutter shapes that are not objects
// (thin ellipses, bars, pentagons, two-colour discs with a hole off
// centre); about a third of the clutter lies over the objects, so objects
// are occluded by clutter and by each other. As in the default variant an
// object left less than 40% visible is removed, boxes and areas are those
// of the visible pixels, and crowds are clusters of tiny shapes of one
// class. The background is a coloured texture (three sinusoids per
// channel, soft blotches) with Gaussian noise.

// HardClasses are the hard variant's category names; id i+1 is HardClasses[i].
var HardClasses = func() []string {
	var names []string
	for _, b := range []string{"circle", "square", "triangle", "cross"} {
		for _, d := range []string{"", "_notched", "_striped", "_dotted"} {
			names = append(names, b+d)
		}
	}
	return names
}()

// hardBase maps a hard class's base (class / 4) to the default variant's
// base-shape index used by baseInside.
var hardBase = [4]int{0, 1, 2, 4}

// ClassNames returns the category names of a variant ("" or "hard").
func ClassNames(variant string) []string {
	if variant == "hard" {
		return HardClasses
	}
	return Classes
}

func supercategory(variant string, class int) string {
	if variant == "hard" {
		return []string{"circle", "square", "triangle", "cross"}[class/4]
	}
	return "shape"
}

// item is one drawn thing of a hard scene: an object's shape or clutter.
type item struct {
	shape
	detail  int      // 0 plain, 1 notched, 2 striped, 3 dotted (objects)
	colour2 [3]uint8 // detail colour
	clutter int      // -1 object; else 0 ellipse, 1 bar, 2 pentagon, 3 holed disc
	aspect  float64  // ellipse / bar length over width
}

// covers reports whether pixel centre (px, py) is painted by the item, and
// whether it takes the second colour.
func (it *item) covers(px, py float64) (in, second bool) {
	dx, dy := px-it.cx, py-it.cy
	u := dx*it.cosT + dy*it.sinT
	v := -dx*it.sinT + dy*it.cosT
	r := it.d / 2
	switch it.clutter {
	case 0: // thin ellipse, long semi-axis r
		b := r / it.aspect
		return (u*u)/(r*r)+(v*v)/(b*b) <= 1, false
	case 1: // bar
		return math.Abs(u) <= r && math.Abs(v) <= r/it.aspect, false
	case 2: // regular pentagon of circumradius r
		for k := 0; k < 5; k++ {
			ang := float64(k) * 2 * math.Pi / 5
			if u*math.Cos(ang)+v*math.Sin(ang) > r*math.Cos(math.Pi/5) {
				return false, false
			}
		}
		return true, false
	case 3: // disc with an off-centre hole, outer half in the second colour
		q := u*u + v*v
		hu := u - 0.35*r
		return q <= r*r && hu*hu+v*v > 0.09*r*r, q > 0.49*r*r
	}
	base := hardBase[it.class/4]
	if !baseInside(base, u, v, it.d) {
		return false, false
	}
	switch it.detail {
	case 1: // notch: a slot into the +u side (the flat bottom edge of a triangle)
		if base == 2 {
			return !(v > 0.1*r && math.Abs(u) < 0.2*r), false
		}
		return !(u > 0.3*r && math.Abs(v) < 0.2*r), false
	case 2:
		return true, int(math.Floor((u+r)/(0.25*r)))%2 == 1
	case 3:
		return true, u*u+v*v <= 0.09*r*r
	}
	return true, false
}

// secondColour returns a detail colour well apart from c's hue and value.
func secondColour(rng *rand.Rand, h, s, v float64) [3]uint8 {
	h2 := math.Mod(h+0.25+0.5*rng.Float64(), 1)
	v2 := v - 0.4
	if v < 0.7 {
		v2 = v + 0.3
	}
	return hsv(h2, math.Max(s, 0.5), math.Min(1, math.Max(0.15, v2)))
}

func renderHard(rng *rand.Rand, W, H int, crowdProb float64) *Scene {
	var items []*item
	var objects []Object
	short := float64(min(W, H))
	lo, hi := math.Log(12), math.Log(math.Max(13, math.Min(200, 0.75*short)))
	nObj := 4 + rng.IntN(7)
	for k := 0; k < nObj; k++ {
		d := math.Exp(lo + rng.Float64()*(hi-lo))
		class := rng.IntN(len(HardClasses))
		h, s, v := rng.Float64(), 0.55+0.45*rng.Float64(), 0.45+0.55*rng.Float64()
		it := &item{shape: shape{class: class, d: d,
			cx:     d/4 + rng.Float64()*(float64(W)-d/2),
			cy:     d/4 + rng.Float64()*(float64(H)-d/2),
			theta:  rng.Float64() * 2 * math.Pi,
			colour: hsv(h, s, v),
			owner:  len(objects)}, detail: class % 4, clutter: -1}
		it.colour2 = secondColour(rng, h, s, v)
		items = append(items, it)
		objects = append(objects, Object{Class: class, Colour: it.colour})
	}
	// Clutter, inserted at random depths among the objects (a third of it
	// on top of all of them).
	nClutter := 3 + rng.IntN(8)
	for k := 0; k < nClutter; k++ {
		d := math.Exp(math.Log(10) + rng.Float64()*(hi-math.Log(10)))
		h, s, v := rng.Float64(), 0.3+0.7*rng.Float64(), 0.3+0.7*rng.Float64()
		it := &item{shape: shape{d: d, cx: rng.Float64() * float64(W), cy: rng.Float64() * float64(H),
			theta: rng.Float64() * 2 * math.Pi, colour: hsv(h, s, v), owner: -1},
			clutter: rng.IntN(4), aspect: 3 + 4*rng.Float64()}
		it.colour2 = secondColour(rng, h, s, v)
		at := len(items)
		if rng.Float64() >= 1.0/3 {
			at = rng.IntN(len(items) + 1)
		}
		items = append(items[:at], append([]*item{it}, items[at:]...)...)
	}
	if crowdProb > 0 && rng.Float64() < crowdProb {
		class := rng.IntN(len(HardClasses))
		col := hsv(rng.Float64(), 0.6+0.4*rng.Float64(), 0.6+0.4*rng.Float64())
		rad := math.Min(22, short/5)
		gx := rad + rng.Float64()*(float64(W)-2*rad)
		gy := rad + rng.Float64()*(float64(H)-2*rad)
		n := 6 + rng.IntN(5)
		for k := 0; k < n; k++ {
			a, rr := rng.Float64()*2*math.Pi, rad*math.Sqrt(rng.Float64())
			items = append(items, &item{shape: shape{class: class, d: 5 + 4*rng.Float64(),
				cx: gx + rr*math.Cos(a), cy: gy + rr*math.Sin(a), theta: rng.Float64() * 2 * math.Pi,
				colour: col, owner: len(objects), crowd: true}, clutter: -1, colour2: col})
		}
		objects = append(objects, Object{Class: class, IsCrowd: true, Colour: col})
	}
	for _, it := range items {
		it.prepare(W, H)
	}

	// Background texture parameters.
	base := hsv(rng.Float64(), 0.15+0.35*rng.Float64(), 0.3+0.45*rng.Float64())
	var freq, ang, amp, ph [3][3]float64
	for c := 0; c < 3; c++ {
		for k := 0; k < 3; k++ {
			freq[c][k] = 0.02 + 0.25*rng.Float64()
			ang[c][k] = rng.Float64() * math.Pi
			amp[c][k] = 4 + 14*rng.Float64()
			ph[c][k] = rng.Float64() * 6.3
		}
	}
	type blotch struct{ x, y, s2, a float64 }
	var blotches [4]blotch
	for k := range blotches {
		s := 15 + 45*rng.Float64()
		blotches[k] = blotch{rng.Float64() * float64(W), rng.Float64() * float64(H), 2 * s * s, 60 * (rng.Float64() - 0.5)}
	}

	// Rasterise in depth order; paint[i] is the topmost item at pixel i.
	paint := make([]int16, W*H)
	second := make([]bool, W*H)
	owner := make([]int16, W*H)
	full := make([]int, len(objects))
	for pass := 0; ; pass++ {
		for i := range paint {
			paint[i], second[i] = -1, false
		}
		for i := range full {
			full[i] = 0
		}
		for n, it := range items {
			if it.removed {
				continue
			}
			for y := it.minY; y <= it.maxY; y++ {
				for x := it.minX; x <= it.maxX; x++ {
					if in, sec := it.covers(float64(x)+0.5, float64(y)+0.5); in {
						paint[y*W+x], second[y*W+x] = int16(n), sec
						if it.owner >= 0 {
							full[it.owner]++
						}
					}
				}
			}
		}
		vis := make([]int, len(objects))
		for i, p := range paint {
			owner[i] = -1
			if p >= 0 && items[p].owner >= 0 {
				owner[i] = int16(items[p].owner)
				vis[owner[i]]++
			}
		}
		changed := false
		for _, it := range items {
			if it.removed || it.crowd || it.owner < 0 {
				continue
			}
			if hidden(vis[it.owner], full[it.owner]) {
				it.removed = true
				changed = true
			}
		}
		if !changed || pass > 10 {
			break
		}
	}
	kept, owner := keepVisible(objects, owner, W, H)

	img := image.NewRGBA(image.Rect(0, 0, W, H))
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			fx, fy := float64(x), float64(y)
			var c [3]float64
			if p := paint[y*W+x]; p >= 0 {
				it := items[p]
				col := it.colour
				if second[y*W+x] {
					col = it.colour2
				}
				sh := 0.9 + 0.1*math.Sin(0.15*fx+0.11*fy)
				c = [3]float64{float64(col[0]) * sh, float64(col[1]) * sh, float64(col[2]) * sh}
			} else {
				var bl float64
				for _, b := range blotches {
					dx, dy := fx-b.x, fy-b.y
					bl += b.a * math.Exp(-(dx*dx+dy*dy)/b.s2)
				}
				for ch := 0; ch < 3; ch++ {
					t := bl
					for k := 0; k < 3; k++ {
						t += amp[ch][k] * math.Sin(freq[ch][k]*(fx*math.Cos(ang[ch][k])+fy*math.Sin(ang[ch][k]))+ph[ch][k])
					}
					c[ch] = float64(base[ch]) + t
				}
			}
			p := img.Pix[y*img.Stride+4*x:]
			for ch := 0; ch < 3; ch++ {
				v := c[ch] + 9*rng.NormFloat64()
				p[ch] = uint8(math.Max(0, math.Min(255, math.Round(v))))
			}
			p[3] = 255
		}
	}
	return &Scene{W: W, H: H, RGB: img, Objects: kept, Owner: owner}
}
