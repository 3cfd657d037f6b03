package layers

import (
	"math"
	"math/rand"
)

// fanInOut returns PyTorch's fan-in and fan-out of a weight shape.
func fanInOut(shape []int) (int, int) {
	if len(shape) < 2 {
		return shape[0], shape[0]
	}
	rf := 1
	for _, d := range shape[2:] {
		rf *= d
	}
	return shape[1] * rf, shape[0] * rf
}

// KaimingUniform fills p as torch.nn.init.kaiming_uniform_(a=a) (fan-in,
// leaky_relu gain), the default of nn.Conv2d (a=sqrt(5)) and of
// torchvision's FPN (a=1).
func KaimingUniform(p *Param, a float64, rng *rand.Rand) {
	fanIn, _ := fanInOut(p.Shape())
	gain := math.Sqrt(2 / (1 + a*a))
	bound := gain * math.Sqrt(3/float64(fanIn))
	for i := range p.Data() {
		p.Data()[i] = float32((rng.Float64()*2 - 1) * bound)
	}
}

// KaimingNormalFanOut fills p as kaiming_normal_(mode="fan_out",
// nonlinearity="relu"), torchvision's ResNet conv init.
func KaimingNormalFanOut(p *Param, rng *rand.Rand) {
	_, fanOut := fanInOut(p.Shape())
	std := math.Sqrt(2 / float64(fanOut))
	for i := range p.Data() {
		p.Data()[i] = float32(rng.NormFloat64() * std)
	}
}

// Normal fills p with N(0, std^2).
func Normal(p *Param, std float64, rng *rand.Rand) {
	for i := range p.Data() {
		p.Data()[i] = float32(rng.NormFloat64() * std)
	}
}

// Constant fills p with v.
func Constant(p *Param, v float32) { fill(p.Data(), v) }
