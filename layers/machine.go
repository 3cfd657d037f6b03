package layers

import (
	"fmt"
	"os"
	"reflect"
	"unsafe"

	G "gorgonia.org/gorgonia"
)

// Machine runs a compiled graph again and again without throwing its
// registers away. Gorgonia's TapeMachine.Reset clears every register, so
// each run after a Reset allocates every tensor anew; Machine only rewinds
// the program counter (an unexported field, found by reflection once; if a
// Gorgonia upgrade renames it, Machine falls back to Reset and the
// regression test TestMachineRewindsWithoutReset fails to say so).
type Machine struct {
	vm G.VM
	pc *int
}

// NewMachine compiles g into a TapeMachine.
func NewMachine(g *G.ExprGraph, opts ...G.VMOpt) (m *Machine, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compiling graph: %v", r)
		}
	}()
	vm := G.NewTapeMachine(g, opts...)
	m = &Machine{vm: vm}
	if os.Getenv("SKD_MACHINE_RESET") == "1" {
		return m, nil // debugging aid: clear registers between runs
	}
	v := reflect.ValueOf(vm)
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if f := v.Elem().FieldByName("pc"); f.IsValid() && f.Kind() == reflect.Int && f.CanAddr() {
			m.pc = (*int)(unsafe.Pointer(f.UnsafeAddr()))
		}
	}
	return m, nil
}

// Rewinds reports whether Run keeps registers between runs.
func (m *Machine) Rewinds() bool { return m.pc != nil }

// Run executes the whole program once.
func (m *Machine) Run() error {
	if m.pc != nil {
		*m.pc = 0
	} else {
		m.vm.Reset()
	}
	return m.vm.RunAll()
}

// Close releases the machine.
func (m *Machine) Close() error { return m.vm.Close() }

// VM returns the underlying Gorgonia machine.
func (m *Machine) VM() G.VM { return m.vm }
