package train

// SaveCheckpoint writes the weights, the solver and the training state
// (with the sampler's and every hook's random state) as
// checkpoints/name; updateLast also points last_checkpoint at it. In a
// data-parallel run every rank calls it and rank 0 writes once all have
// finished the step (RootDo); the others get "" and rank 0's error.
func (t *Trainer) SaveCheckpoint(name string, updateLast bool) (string, error) {
	if err := t.checkWeightsFinite(); err != nil {
		return "", t.DDP.same(err)
	}
	b, err := t.Det.PCG.MarshalBinary()
	if err != nil {
		return "", err
	}
	t.State.SamplerRNG = b
	if t.State.ExtraRNG, err = t.hookStates(); err != nil {
		return "", err
	}
	var dir string
	err = t.RootDo(func() error {
		var err error
		dir, err = SaveCheckpoint(t.WorkDir, name, t.Det.Reg, t.Opt, &t.State, updateLast)
		if err == nil && updateLast {
			t.checkpointSaved(dir)
		}
		return err
	})
	return dir, err
}
