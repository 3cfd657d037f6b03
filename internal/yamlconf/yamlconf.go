// Package yamlconf loads YAML configuration files into Go structs; it
// knows no project schema (that is package config, which uses it).
//
// A configuration file may name base files under a top-level "_base_" key (a
// string or a list of strings, paths relative to the including file). Bases
// are loaded first, recursively, in list order, then the file itself is
// merged on top: later wins, mappings merge deeply, lists and scalars
// (null included) replace. Command-line overrides ("a.b.c=value") are
// applied to the merged tree, and the tree is then decoded strictly into a
// struct: unknown keys and values of the wrong type are errors that name the
// dotted key path, and for unknown keys the nearest valid key.
//
// Every error returned by this package is an *Error.
package yamlconf

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// BaseKey is the top-level key that names base files.
const BaseKey = "_base_"

// SetSource is the File of errors and key origins that come from
// command-line overrides (ApplySets).
const SetSource = "--set"

// Error is the error type of this package. File is the configuration file
// (or SetSource) the problem comes from, Path the dotted key path inside it
// (lists use "[i]"), Msg the problem. Empty parts are left out of Error().
type Error struct {
	File string
	Path string
	Msg  string
}

// Error formats the error as "file: path: msg".
func (e *Error) Error() string {
	var parts []string
	if e.File != "" {
		parts = append(parts, e.File)
	}
	if e.Path != "" {
		parts = append(parts, e.Path)
	}
	parts = append(parts, e.Msg)
	return strings.Join(parts, ": ")
}

// origins maps dotted key paths to the file (or SetSource) that last set
// them; it lets errors found while decoding name the file they come from.
type origins map[string]string

// record marks path and every path below v as coming from file, and drops
// records under path left over from a value that v replaces.
func (o origins) record(path string, v any, file string, replaced bool) {
	if o == nil {
		return
	}
	if replaced {
		prefix := path + "."
		for k := range o {
			if strings.HasPrefix(k, prefix) {
				delete(o, k)
			}
		}
	}
	o[path] = file
	if m, ok := v.(map[string]any); ok {
		for k, c := range m {
			o.record(joinPath(path, k), c, file, false)
		}
	}
}

// lookup returns the file that set path, or of its nearest recorded parent.
func (o origins) lookup(path string) string {
	for path != "" {
		if f, ok := o[path]; ok {
			return f
		}
		if i := strings.LastIndexAny(path, ".["); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
	return ""
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// LoadTree reads the YAML file at path, resolves its "_base_" chain and
// returns the merged tree, without the "_base_" key.
func LoadTree(path string) (map[string]any, error) {
	tree, _, err := loadTree(path)
	return tree, err
}

func loadTree(path string) (map[string]any, origins, error) {
	orig := origins{}
	tree, err := loadFile(path, nil, orig)
	if err != nil {
		return nil, nil, err
	}
	return tree, orig, nil
}

// loadFile loads path and its bases; stack holds the absolute paths of the
// files that include it (with their display names), for cycle detection.
func loadFile(path string, stack []stackEntry, orig origins) (map[string]any, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	for i, s := range stack {
		if s.abs == abs {
			var chain []string
			for _, t := range stack[i:] {
				chain = append(chain, t.name)
			}
			chain = append(chain, path)
			return nil, &Error{File: stack[len(stack)-1].name, Path: BaseKey,
				Msg: "base cycle: " + strings.Join(chain, " -> ")}
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = "cannot read: " + pe.Err.Error()
		}
		return nil, &Error{File: path, Msg: msg}
	}
	own, err := parseDocument(data)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	bases, err := baseList(own[BaseKey])
	if err != nil {
		return nil, &Error{File: path, Path: BaseKey, Msg: err.Error()}
	}
	delete(own, BaseKey)

	stack = append(stack, stackEntry{abs: abs, name: path})
	tree := map[string]any{}
	dir := filepath.Dir(path)
	for _, b := range bases {
		bp := b
		if !filepath.IsAbs(bp) {
			bp = filepath.Join(dir, bp)
		}
		if _, err := os.Stat(bp); err != nil {
			msg := err.Error()
			var pe *fs.PathError
			if errors.As(err, &pe) {
				msg = pe.Err.Error()
			}
			return nil, &Error{File: path, Path: BaseKey,
				Msg: fmt.Sprintf("base %q (%s): %s", b, bp, msg)}
		}
		bt, err := loadFile(bp, stack, orig)
		if err != nil {
			return nil, err
		}
		merge(tree, bt, "", nil, "")
	}
	merge(tree, own, "", orig, path)
	return tree, nil
}

type stackEntry struct{ abs, name string }

// baseList reads the value of a "_base_" key.
func baseList(v any) ([]string, error) {
	switch b := v.(type) {
	case nil:
		return nil, nil
	case string:
		if b == "" {
			return nil, errors.New("empty base path")
		}
		return []string{b}, nil
	case []any:
		out := make([]string, 0, len(b))
		for i, e := range b {
			s, ok := e.(string)
			if !ok || s == "" {
				return nil, fmt.Errorf("entry %d: want a non-empty path string, got %s", i, describe(e))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a path or a list of paths, got %s", describe(v))
}

// parseDocument parses a YAML document whose top level must be a mapping
// (an empty document gives an empty tree).
func parseDocument(data []byte) (map[string]any, error) {
	var raw any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, yamlError(err)
	}
	if raw == nil {
		return map[string]any{}, nil
	}
	v, err := normalize(raw, "")
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("top level must be a mapping, got %s", describe(v))
	}
	return m, nil
}

// yamlError turns a yaml.v3 error ("yaml: line 3: ...", or a multi-line
// "yaml: unmarshal errors:" list) into a one-line error that keeps the line.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return errors.New(strings.Join(lines, "; "))
}

// normalize copies a value decoded by yaml.v3 so that every mapping is a
// map[string]any (scalar keys are formatted as strings).
func normalize(v any, path string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, c := range x {
			n, err := normalize(c, joinPath(path, k))
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, c := range x {
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case int, int64, uint64, float64, bool:
				ks = fmt.Sprint(kk)
			default:
				return nil, fmt.Errorf("%s: unsupported mapping key %s", orRoot(path), describe(k))
			}
			if _, dup := out[ks]; dup {
				return nil, fmt.Errorf("%s: mapping key %q given twice", orRoot(path), ks)
			}
			n, err := normalize(c, joinPath(path, ks))
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			n, err := normalize(c, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	}
	return v, nil
}

func orRoot(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

// merge merges src into dst: mappings merge deeply, anything else replaces.
// When orig is not nil, the keys src sets are recorded as coming from file.
func merge(dst, src map[string]any, path string, orig origins, file string) {
	for k, sv := range src {
		p := joinPath(path, k)
		sm, sIsMap := sv.(map[string]any)
		dm, dIsMap := dst[k].(map[string]any)
		if sIsMap && dIsMap {
			if orig != nil {
				orig[p] = file
			}
			merge(dm, sm, p, orig, file)
			continue
		}
		_, existed := dst[k]
		dst[k] = sv
		orig.record(p, sv, file, existed)
	}
}

// ApplySets applies command-line overrides "a.b.c=value" to tree, in order.
// The value is parsed as YAML ("3", "0.02", "true", "[1, 2]", "{a: 1}",
// "\"text\""; an empty value is null). Missing mappings on the path are
// created; a null on the path is replaced by a mapping; any other non-mapping
// value on the path is an error.
func ApplySets(tree map[string]any, sets []string) error {
	return applySets(tree, sets, nil)
}

func applySets(tree map[string]any, sets []string, orig origins) error {
	if tree == nil {
		return &Error{File: SetSource, Msg: "nil tree"}
	}
	for _, s := range sets {
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return &Error{File: SetSource, Msg: fmt.Sprintf("malformed entry %q: want key.path=value", s)}
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" {
			return &Error{File: SetSource, Msg: fmt.Sprintf("malformed entry %q: empty key", s)}
		}
		parts := strings.Split(key, ".")
		for _, p := range parts {
			if p == "" {
				return &Error{File: SetSource, Msg: fmt.Sprintf("malformed entry %q: empty key segment in %q", s, key)}
			}
		}
		var raw any
		if err := yaml.Unmarshal([]byte(s[eq+1:]), &raw); err != nil {
			return &Error{File: SetSource, Path: key,
				Msg: fmt.Sprintf("entry %q: bad value: %v", s, yamlError(err))}
		}
		val, err := normalize(raw, "")
		if err != nil {
			return &Error{File: SetSource, Path: key, Msg: fmt.Sprintf("entry %q: bad value: %v", s, err)}
		}
		m := tree
		for i, p := range parts[:len(parts)-1] {
			next, ok := m[p]
			switch n := next.(type) {
			case map[string]any:
				m = n
				continue
			case nil:
				nm := map[string]any{}
				m[p] = nm
				m = nm
				if ok {
					delete(orig, strings.Join(parts[:i+1], "."))
				}
				if orig != nil { // a key this entry creates comes from --set
					orig[strings.Join(parts[:i+1], ".")] = SetSource
				}
				continue
			}
			return &Error{File: SetSource, Path: key,
				Msg: fmt.Sprintf("entry %q: %q is %s, not a mapping", s, strings.Join(parts[:i+1], "."), describe(next))}
		}
		last := parts[len(parts)-1]
		if vm, ok := val.(map[string]any); ok {
			if dm, ok := m[last].(map[string]any); ok {
				// a mapping merges into the mapping it sets, as _base_
				// merging does (the keys it leaves out keep their values)
				merge(dm, vm, key, orig, SetSource)
				continue
			}
		}
		_, existed := m[last]
		m[last] = val
		orig.record(key, val, SetSource, existed)
	}
	return nil
}

// Decode decodes tree into out, a non-nil pointer (normally to a struct
// with `yaml` tags). It is strict: a key that matches no field is an error
// naming its dotted path and, when one is close, the nearest valid key; a
// value of the wrong type is an error naming the path, the type wanted and
// the value. Fields absent from tree keep the values out already had, so
// callers fill in defaults first; mappings into Go maps add to (and replace
// entries of) the map already there. A null value sets the field to its
// zero value (a nil pointer, slice or map; 0; ""; an all-zero struct).
//
// Supported: nested structs, pointers, slices, fixed-size arrays, maps with
// string or integer keys, embedded or named fields with `yaml:",inline"`
// (structs, pointers to structs, and one map that collects the keys no
// field takes), `yaml:"-"`, interface{} fields (given the raw tree value),
// time.Duration (from strings such as "1.5s"), time.Time, and types
// implementing yaml.Unmarshaler or encoding.TextUnmarshaler.
func Decode(tree map[string]any, out any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &Error{Msg: fmt.Sprintf("internal error while decoding: %v", r)}
		}
	}()
	rv := reflect.ValueOf(out)
	if !rv.IsValid() || rv.Kind() != reflect.Pointer || rv.IsNil() {
		return &Error{Msg: fmt.Sprintf("decode target must be a non-nil pointer, got %T", out)}
	}
	var v any = tree
	if tree == nil {
		v = map[string]any{}
	}
	return decodeValue(v, rv.Elem(), "")
}

var (
	durationType     = reflect.TypeOf(time.Duration(0))
	timeType         = reflect.TypeOf(time.Time{})
	yamlUnmarshalerT = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	textUnmarshalerT = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

func typeErr(path, want string, v any) error {
	return &Error{Path: path, Msg: fmt.Sprintf("want %s, got %s", want, describe(v))}
}

// describe shows a tree value in an error: strings quoted, scalars as
// written, mappings and lists by kind.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return strconv.Quote(x)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return fmt.Sprintf("a list of %d elements", len(x))
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case time.Time:
		return "timestamp " + x.Format(time.RFC3339Nano)
	}
	return fmt.Sprint(v)
}

func decodeValue(v any, dst reflect.Value, path string) error {
	t := dst.Type()
	if v == nil {
		dst.Set(reflect.Zero(t))
		return nil
	}
	// Types with their own decoding: hand yaml.v3 a node of this value.
	if t != timeType && t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface &&
		(reflect.PointerTo(t).Implements(yamlUnmarshalerT) || reflect.PointerTo(t).Implements(textUnmarshalerT)) {
		return decodeViaYAML(v, dst, path)
	}
	switch t {
	case durationType:
		s, ok := v.(string)
		if !ok {
			return typeErr(path, `a duration such as "1.5s"`, v)
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return typeErr(path, `a duration such as "1.5s"`, v)
		}
		dst.SetInt(int64(d))
		return nil
	case timeType:
		switch x := v.(type) {
		case time.Time:
			dst.Set(reflect.ValueOf(x))
			return nil
		case string:
			tm, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return typeErr(path, "an RFC 3339 timestamp", v)
			}
			dst.Set(reflect.ValueOf(tm))
			return nil
		}
		return typeErr(path, "a timestamp", v)
	}

	switch t.Kind() {
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return typeErr(path, "a boolean", v)
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := toInt(v)
		if !ok {
			return typeErr(path, "an integer", v)
		}
		if dst.OverflowInt(i) {
			return &Error{Path: path, Msg: fmt.Sprintf("value %s out of range for %s", describe(v), t)}
		}
		dst.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u, ok := toUint(v)
		if !ok {
			return typeErr(path, "a non-negative integer", v)
		}
		if dst.OverflowUint(u) {
			return &Error{Path: path, Msg: fmt.Sprintf("value %s out of range for %s", describe(v), t)}
		}
		dst.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case int:
			f = float64(x)
		case int64:
			f = float64(x)
		case uint64:
			f = float64(x)
		default:
			return typeErr(path, "a number", v)
		}
		if t.Kind() == reflect.Float32 && !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
			return &Error{Path: path, Msg: fmt.Sprintf("value %s out of range for %s", describe(v), t)}
		}
		dst.SetFloat(f)
	case reflect.String:
		switch x := v.(type) {
		case string:
			dst.SetString(x)
		case bool, int, int64, uint64:
			dst.SetString(fmt.Sprint(x))
		case float64:
			dst.SetString(strconv.FormatFloat(x, 'g', -1, 64))
		case time.Time:
			if x.Equal(x.Truncate(24*time.Hour)) && x.Location() == time.UTC {
				dst.SetString(x.Format("2006-01-02"))
			} else {
				dst.SetString(x.Format(time.RFC3339Nano))
			}
		default:
			return typeErr(path, "a string", v)
		}
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return &Error{Path: path, Msg: fmt.Sprintf("cannot decode into interface type %s", t)}
		}
		c, _ := normalize(v, path) // deep copy; tree values are already normalized
		dst.Set(reflect.ValueOf(c))
	case reflect.Pointer:
		if dst.IsNil() {
			dst.Set(reflect.New(t.Elem()))
		} else {
			// Decode into a copy so that an error leaves the original intact
			// and values shared with the caller's defaults are not changed.
			cp := reflect.New(t.Elem())
			cp.Elem().Set(dst.Elem())
			dst.Set(cp)
		}
		return decodeValue(v, dst.Elem(), path)
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return typeErr(path, "a list", v)
		}
		s := reflect.MakeSlice(t, len(l), len(l))
		for i, e := range l {
			if err := decodeValue(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Array:
		l, ok := v.([]any)
		if !ok {
			return typeErr(path, fmt.Sprintf("a list of %d elements", t.Len()), v)
		}
		if len(l) != t.Len() {
			return typeErr(path, fmt.Sprintf("a list of %d elements", t.Len()), v)
		}
		a := reflect.New(t).Elem()
		for i, e := range l {
			if err := decodeValue(e, a.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(a)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return typeErr(path, "a mapping", v)
		}
		return decodeMap(m, dst, path)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return typeErr(path, "a mapping", v)
		}
		return decodeStruct(m, dst, path)
	default:
		return &Error{Path: path, Msg: fmt.Sprintf("cannot decode into Go type %s", t)}
	}
	return nil
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	case float64:
		if x == math.Trunc(x) && x >= -(1<<63) && x < (1<<63) {
			return int64(x), true
		}
	}
	return 0, false
}

func toUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case int:
		if x >= 0 {
			return uint64(x), true
		}
	case int64:
		if x >= 0 {
			return uint64(x), true
		}
	case uint64:
		return x, true
	case float64:
		if x == math.Trunc(x) && x >= 0 && x < (1<<64) {
			return uint64(x), true
		}
	}
	return 0, false
}

// decodeViaYAML decodes v into dst with yaml.v3, for types that implement
// yaml.Unmarshaler or encoding.TextUnmarshaler.
func decodeViaYAML(v any, dst reflect.Value, path string) error {
	var node yaml.Node
	if err := node.Encode(v); err != nil {
		return &Error{Path: path, Msg: err.Error()}
	}
	p := reflect.New(dst.Type())
	p.Elem().Set(dst)
	if err := node.Decode(p.Interface()); err != nil {
		return &Error{Path: path, Msg: fmt.Sprintf("cannot decode %s into %s: %v", describe(v), dst.Type(), yamlError(err))}
	}
	dst.Set(p.Elem())
	return nil
}

func decodeMap(m map[string]any, dst reflect.Value, path string) error {
	t := dst.Type()
	kt := t.Key()
	nm := reflect.MakeMapWithSize(t, dst.Len()+len(m))
	iter := dst.MapRange()
	for iter.Next() {
		nm.SetMapIndex(iter.Key(), iter.Value())
	}
	for _, k := range sortedKeys(m) {
		kp := joinPath(path, k)
		key := reflect.New(kt).Elem()
		switch kt.Kind() {
		case reflect.String:
			key.SetString(k)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			i, err := strconv.ParseInt(k, 0, 64)
			if err != nil || key.OverflowInt(i) {
				return &Error{Path: kp, Msg: fmt.Sprintf("key %q is not a valid %s", k, kt)}
			}
			key.SetInt(i)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			u, err := strconv.ParseUint(k, 0, 64)
			if err != nil || key.OverflowUint(u) {
				return &Error{Path: kp, Msg: fmt.Sprintf("key %q is not a valid %s", k, kt)}
			}
			key.SetUint(u)
		default:
			return &Error{Path: path, Msg: fmt.Sprintf("cannot decode into map with key type %s", kt)}
		}
		elem := reflect.New(t.Elem()).Elem()
		if old := nm.MapIndex(key); old.IsValid() {
			elem.Set(old)
		}
		if err := decodeValue(m[k], elem, kp); err != nil {
			return err
		}
		nm.SetMapIndex(key, elem)
	}
	dst.Set(nm)
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// fieldInfo locates a struct field by yaml key, through inline fields.
type fieldInfo struct {
	key   string
	index []int // reflect index path from the outer struct
}

type structInfo struct {
	fields    map[string]fieldInfo
	names     []string // valid keys, sorted
	inlineMap []int    // index of the `,inline` map field, or nil
	err       error
}

var structInfoCache sync.Map // reflect.Type -> *structInfo

func getStructInfo(t reflect.Type) *structInfo {
	if si, ok := structInfoCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{fields: map[string]fieldInfo{}}
	si.err = collectFields(t, nil, si, map[reflect.Type]bool{})
	for k := range si.fields {
		si.names = append(si.names, k)
	}
	sort.Strings(si.names)
	structInfoCache.Store(t, si)
	return si
}

func collectFields(t reflect.Type, prefix []int, si *structInfo, seen map[reflect.Type]bool) error {
	if seen[t] {
		return fmt.Errorf("struct %s is inlined into itself", t)
	}
	seen[t] = true
	defer delete(seen, t)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue // unexported
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		inline := false
		for _, fl := range strings.Split(flags, ",") {
			if fl == "inline" {
				inline = true
			}
		}
		index := append(append([]int(nil), prefix...), i)
		if inline {
			ft := f.Type
			switch {
			case ft.Kind() == reflect.Struct:
				if err := collectFields(ft, index, si, seen); err != nil {
					return err
				}
			case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
				if f.PkgPath != "" {
					return fmt.Errorf("field %s.%s: an inline pointer must be exported to be set", t, f.Name)
				}
				if err := collectFields(ft.Elem(), index, si, seen); err != nil {
					return err
				}
			case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String:
				if si.inlineMap != nil {
					return fmt.Errorf("struct %s has more than one inline map", t)
				}
				si.inlineMap = index
			default:
				return fmt.Errorf("field %s.%s: inline needs a struct, a pointer to a struct or a map with string keys", t, f.Name)
			}
			continue
		}
		if f.PkgPath != "" {
			continue // unexported embedded field without inline
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if _, dup := si.fields[name]; dup {
			return fmt.Errorf("struct %s: yaml key %q used by two fields", t, name)
		}
		si.fields[name] = fieldInfo{key: name, index: index}
	}
	return nil
}

// fieldByIndex walks an index path through inline fields. A pointer to an
// inline struct met on the way is replaced, once per decodeStruct call (as
// recorded in fresh), by a new allocation: a nil one by a zero struct, a
// non-nil one by a copy, so that the caller's value is never written to.
func fieldByIndex(v reflect.Value, index []int, fresh map[string]bool) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			key := fmt.Sprint(index[:i])
			if !fresh[key] {
				p := reflect.New(v.Type().Elem())
				if !v.IsNil() {
					p.Elem().Set(v.Elem())
				}
				v.Set(p)
				fresh[key] = true
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

func decodeStruct(m map[string]any, dst reflect.Value, path string) error {
	si := getStructInfo(dst.Type())
	if si.err != nil {
		return &Error{Path: path, Msg: si.err.Error()}
	}
	// Check every key first so that nothing is written on error.
	for _, k := range sortedKeys(m) {
		if _, ok := si.fields[k]; ok || si.inlineMap != nil {
			continue
		}
		msg := fmt.Sprintf("unknown key %q", joinPath(path, k))
		if s := suggest(k, si.names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", joinPath(path, s))
		}
		return &Error{Path: joinPath(path, k), Msg: msg}
	}
	// Decode into a copy, set it only on success.
	cp := reflect.New(dst.Type()).Elem()
	cp.Set(dst)
	var extra map[string]any
	fresh := map[string]bool{}
	for _, k := range sortedKeys(m) {
		fi, ok := si.fields[k]
		if !ok {
			if extra == nil {
				extra = map[string]any{}
			}
			extra[k] = m[k]
			continue
		}
		if err := decodeValue(m[k], fieldByIndex(cp, fi.index, fresh), joinPath(path, k)); err != nil {
			return err
		}
	}
	if extra != nil {
		if err := decodeMap(extra, fieldByIndex(cp, si.inlineMap, fresh), path); err != nil {
			return err
		}
	}
	dst.Set(cp)
	return nil
}

// suggest returns the candidate nearest to key by Levenshtein distance, if
// it is close enough: distance at most max(2, len(key)/3) and smaller than
// both lengths. Ties go to the first candidate in sorted order.
func suggest(key string, candidates []string) string {
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		d := levenshtein(key, c)
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len([]rune(key))/3)
	if best == "" || bestD > limit || bestD >= len([]rune(key)) || bestD >= len([]rune(best)) {
		return ""
	}
	return best
}

// levenshtein is the edit distance between a and b over runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Load reads the configuration file at path (with its bases), applies the
// overrides in sets and decodes the result into out (see Decode). It
// returns the resolved configuration: out marshalled to YAML (two-space
// indent), defaults included, for saving beside the results of a run. Errors found while
// decoding name the file (or SetSource) the offending key came from.
func Load(path string, sets []string, out any) (resolved []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			resolved, err = nil, &Error{File: path, Msg: fmt.Sprintf("internal error: %v", r)}
		}
	}()
	tree, orig, err := loadTree(path)
	if err != nil {
		return nil, err
	}
	if err := applySets(tree, sets, orig); err != nil {
		return nil, err
	}
	if err := Decode(tree, out); err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.File == "" {
			ce.File = orig.lookup(ce.Path)
			if ce.File == "" {
				ce.File = path
			}
		}
		return nil, err
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(out); err != nil {
		return nil, &Error{File: path, Msg: "cannot marshal resolved configuration: " + err.Error()}
	}
	if err := enc.Close(); err != nil {
		return nil, &Error{File: path, Msg: "cannot marshal resolved configuration: " + err.Error()}
	}
	return buf.Bytes(), nil
}

// Hash returns the first 16 hexadecimal digits of the SHA-256 of a resolved
// configuration, to tag checkpoints with the configuration they come from.
func Hash(resolved []byte) string {
	sum := sha256.Sum256(resolved)
	return hex.EncodeToString(sum[:])[:16]
}

// Save writes resolved to path atomically: it writes a temporary file in
// the same directory, syncs it and renames it over path, so that readers
// see either the old file or the whole new one.
func Save(path string, resolved []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return &Error{File: path, Msg: "cannot create temporary file: " + err.Error()}
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(resolved); err != nil {
		return &Error{File: path, Msg: "write: " + err.Error()}
	}
	if err = f.Chmod(0o644); err != nil {
		return &Error{File: path, Msg: "chmod: " + err.Error()}
	}
	if err = f.Sync(); err != nil {
		return &Error{File: path, Msg: "sync: " + err.Error()}
	}
	if err = f.Close(); err != nil {
		return &Error{File: path, Msg: "close: " + err.Error()}
	}
	if err = os.Rename(tmp, path); err != nil {
		return &Error{File: path, Msg: "rename: " + err.Error()}
	}
	// Make the rename durable; not every platform can sync a directory.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
