package layers

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"unsafe"

	G "gorgonia.org/gorgonia"
)

// Machine runs a compiled graph again and again without throwing its
// registers away. Gorgonia's TapeMachine.Reset clears every register, so
// each run after a Reset allocates every tensor anew; Machine only rewinds
// the program counter (an unexported field, found by reflection once; if a
// Gorgonia upgrade renames it, Machine falls back to Reset and the
// regression test TestMachineRewindsWithoutReset fails to say so).
//
// A machine made by Builder.Compile on a builder with an Arena is planned:
// its values live in the arena (see Arena), not in tensors of their own.
type Machine struct {
	vm    G.VM
	pc    *int
	arena *Arena
	plan  *memPlan
	stats PlanStats
	watch *watch // WatchGroups
}

// NewMachine compiles g into a TapeMachine whose ops keep their own
// output tensors (no arena).
func NewMachine(g *G.ExprGraph, opts ...G.VMOpt) (m *Machine, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compiling graph: %v", r)
		}
	}()
	vm := G.NewTapeMachine(g, opts...)
	// NewTapeMachine sets a finalizer that does nothing without CUDA; an
	// object with a finalizer inside a reference cycle is never collected,
	// and a graph whose ops refer back to their program (host ops do) makes
	// that cycle, so every program ever built would stay in memory
	// (TestPitfallTapeMachineFinalizerCycle).
	runtime.SetFinalizer(vm, nil)
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

// Compile compiles the builder's graph. With an arena (UseArena) the
// graph's values are planned into it first.
func (b *Builder) Compile(opts ...G.VMOpt) (*Machine, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.arena == nil {
		return NewMachine(b.G, opts...)
	}
	a := b.arena
	if _, err := replaceGorgoniaAdds(b.G); err != nil {
		return nil, fmt.Errorf("planning memory: %w", err)
	}
	plan, st, err := a.plan(b.G)
	if err != nil {
		return nil, fmt.Errorf("planning memory: %w", err)
	}
	m, err := NewMachine(b.G, opts...)
	if err != nil {
		return nil, err
	}
	plan.m = m
	m.arena, m.plan, m.stats = a, plan, st
	a.plans = append(a.plans, plan)
	return m, nil
}

// Rewinds reports whether Run keeps registers between runs.
func (m *Machine) Rewinds() bool { return m.pc != nil }

// Planned reports whether the machine computes in an arena, and the plan's
// figures.
func (m *Machine) Planned() (PlanStats, bool) { return m.stats, m.plan != nil }

// Run executes the whole program once (reporting watched groups as they
// complete, WatchGroups).
func (m *Machine) Run() error {
	if m.plan != nil {
		if err := m.arena.reserve(m.plan.peak, m.plan); err != nil {
			return err
		}
		m.arena.beforeRun(m.plan)
	}
	if m.pc != nil {
		*m.pc = 0
	} else {
		m.vm.Reset()
	}
	w := m.watch
	if w == nil {
		return m.vm.RunAll()
	}
	w.next = 0
	for k := range w.reported {
		w.reported[k] = -1
	}
	if m.plan != nil {
		m.arena.watch = w
	}
	err := m.vm.RunAll()
	if m.plan != nil {
		m.arena.watch = nil
	}
	if err == nil {
		w.finish()
	}
	return err
}

// Close releases the machine (and its place in the arena).
func (m *Machine) Close() error {
	if m.plan != nil {
		m.arena.drop(m.plan)
		m.plan = nil
	}
	return m.vm.Close()
}

// VM returns the underlying Gorgonia machine.
func (m *Machine) VM() G.VM { return m.vm }
