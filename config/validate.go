package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"

	"github.com/skd-go/skd/model/modelcfg"
)

// checkFinite walks a configuration value and refuses any NaN or infinite
// number, naming its key: no setting of this project means anything at
// NaN or Inf, and such values used to pass range checks (NaN compares
// false) and fail late or never.
func checkFinite(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s is %v: want a finite number", path, f)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return checkFinite(v.Elem(), path)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if err := checkFinite(v.Field(i), joinPath(path, name)); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if err := checkFinite(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			if err := checkFinite(v.MapIndex(k), joinPath(path, fmt.Sprint(k))); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkModelKeys checks the model settings whose own checks (in rpn,
// roihead) test several keys at once, so that the error names the key at
// fault.
func checkModelKeys(m *modelcfg.Config) error {
	ints := []struct {
		key string
		v   int
	}{
		{"model.fpn_channels", m.FPNChannels},
		{"model.rpn.pre_nms_top_n_train", m.RPN.PreNMSTopNTrain},
		{"model.rpn.pre_nms_top_n_test", m.RPN.PreNMSTopNTest},
		{"model.rpn.post_nms_top_n_train", m.RPN.PostNMSTopNTrain},
		{"model.rpn.post_nms_top_n_test", m.RPN.PostNMSTopNTest},
		{"model.rpn.batch_size_per_image", m.RPN.BatchSizePerImg},
		{"model.roi_heads.batch_size_per_image", m.RoI.BatchSizePerImg},
		{"model.roi_heads.representation_size", m.RoI.RepresentationSize},
		{"model.roi_heads.pool_size", m.RoI.PoolSize},
		{"model.roi_heads.detections_per_img", m.RoI.DetectionsPerImg},
	}
	for _, c := range ints {
		if c.v <= 0 {
			return fmt.Errorf("%s is %d: want > 0", c.key, c.v)
		}
	}
	for _, c := range []struct {
		key string
		v   float64
	}{{"model.rpn.positive_fraction", m.RPN.PositiveFraction}, {"model.roi_heads.positive_fraction", m.RoI.PositiveFraction}} {
		if !(c.v > 0 && c.v <= 1) {
			return fmt.Errorf("%s is %v: want a fraction in (0, 1]", c.key, c.v)
		}
	}
	if !(m.Backbone.WidthMult > 0) {
		return fmt.Errorf("model.backbone.width_mult is %v: want > 0", m.Backbone.WidthMult)
	}
	for i, l := range m.RPN.AnchorSizes {
		for j, s := range l {
			if !(s > 0) {
				return fmt.Errorf("model.rpn.anchor_sizes[%d][%d] is %v: want > 0", i, j, s)
			}
		}
	}
	for i, l := range m.RPN.AspectRatios {
		for j, r := range l {
			if !(r > 0) {
				return fmt.Errorf("model.rpn.aspect_ratios[%d][%d] is %v: want > 0", i, j, r)
			}
		}
	}
	return nil
}

// joinPath joins a dotted key path and a key.
func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}
