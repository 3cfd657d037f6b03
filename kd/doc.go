// Package kd implements feature-distillation losses for detectors: the
// structural (SSIM) loss of "Structural Knowledge Distillation for Object
// Detection" (NeurIPS 2022) as published (kornia's ssim_loss after a
// min-max normalisation), and the usual alternatives: l1, l2 (MSE), PKD,
// CWD and MGD (formulas of mmrazor).
//
// The pure kernels (SSIM, L1, L2, PKD, CWD, SumMSE) work on []float32 NCHW
// slices and return the loss in float64 plus, on request, its gradient
// with respect to the student. Distiller wraps them as Gorgonia custom ops
// on the student's FPN nodes; the frozen teacher's maps are host data
// (Teacher) refilled before every run, never graph nodes. docs/KD.md lists
// the formulas, defaults, the small-map rule and measured figures.
package kd
