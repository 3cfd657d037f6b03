package layers

import (
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestMachineRewindsWithoutReset pins two Gorgonia facts Machine relies
// on: TapeMachine.Reset clears the registers (so every op reallocates), and
// the unexported program counter can be rewound instead. After the first
// run, repeated runs must reuse the same output tensors and give the same
// values.
func TestMachineRewindsWithoutReset(t *testing.T) {
	reg := NewRegistry()
	conv := NewConv2d(reg, "c", 2, 3, 3, 1, 1, 1, true)
	for i := range conv.Weight.Data() {
		conv.Weight.Data()[i] = float32(i%5) * 0.1
	}
	b := NewBuilder(reg)
	x := b.Input("x", 1, 2, 5, 5)
	y := b.Conv(x, conv, nil, nil, true)
	k := b.Keep(y)
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
	img := tensor.New(tensor.WithShape(1, 2, 5, 5), tensor.Of(tensor.Float32))
	for i := range img.Data().([]float32) {
		img.Data().([]float32)[i] = float32(i) * 0.01
	}
	G.Let(x, img)
	m, err := NewMachine(b.G)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !m.Rewinds() {
		t.Fatal("Gorgonia's tapeMachine has no int field 'pc' any more: Machine falls back to Reset (every run reallocates); revisit layers/machine.go")
	}
	if err := m.Run(); err != nil {
		t.Fatal(err)
	}
	first := append([]float32(nil), k.Data()...)
	v1 := y.Value()
	for i := 0; i < 3; i++ {
		if err := m.Run(); err != nil {
			t.Fatal(err)
		}
	}
	if y.Value() != v1 {
		t.Error("output tensor reallocated between runs")
	}
	for i, v := range k.Data() {
		if v != first[i] {
			t.Fatalf("run 4 differs from run 1 at %d: %v vs %v", i, v, first[i])
		}
	}
	// Reset really clears registers: the output becomes a fresh value only
	// if the op did not cache; our ops cache, so the value is the op's own.
	m.VM().Reset()
	if err := m.VM().RunAll(); err != nil {
		t.Fatal(err)
	}
	for i, v := range k.Data() {
		if v != first[i] {
			t.Fatalf("after Reset, value differs at %d", i)
		}
	}
}
