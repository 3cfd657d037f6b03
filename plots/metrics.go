package plots

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// ReadMetricsJSONL reads a metrics.jsonl log (one JSON object per line) and
// returns one series per numeric field, keyed by field name, with x taken
// from the line's "iter" field. See ReadMetricsJSONLStats for the rules;
// this variant drops the count of skipped lines.
func ReadMetricsJSONL(path string) (map[string][]Point, error) {
	s, _, err := ReadMetricsJSONLStats(path)
	return s, err
}

// ReadMetricsJSONLStats is ReadMetricsJSONL that also returns how many
// non-blank lines were skipped. Rules:
//
//   - a line that is not a JSON object, or has no numeric "iter" field, is
//     skipped and counted (a crash can leave a torn last line);
//   - bare NaN, Infinity and -Infinity tokens (as Python's json module
//     writes them) are accepted and read as missing values;
//   - numeric fields become series; nested objects are flattened with "/"
//     ({"loss": {"cls": 0.3}} gives "loss/cls"); strings, booleans, nulls
//     and arrays are ignored; "iter" itself is not a series;
//   - each series is sorted by iteration, and when an iteration appears
//     more than once (a run resumed from an earlier checkpoint re-logs
//     it) the last line in the file wins.
//
// It fails only when the file cannot be read.
func ReadMetricsJSONLStats(path string) (map[string][]Point, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("plots: %w", err)
	}
	defer f.Close()
	series := map[string][]Point{}
	skipped := 0
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, rerr := r.ReadBytes('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, 0, fmt.Errorf("plots: read %s: %w", path, rerr)
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if err := parseMetricsLine(line, series); err != nil {
				skipped++
			}
		}
		if rerr != nil {
			break
		}
	}
	for k, pts := range series {
		series[k] = sortDedup(pts)
	}
	return series, skipped, nil
}

func parseMetricsLine(line []byte, series map[string][]Point) error {
	var obj map[string]any
	if err := json.Unmarshal(replaceNonFinite(line), &obj); err != nil {
		return err
	}
	iter, ok := obj["iter"].(float64)
	if !ok {
		return errNoIter
	}
	flatten("", obj, func(k string, v float64) {
		if k != "iter" {
			series[k] = append(series[k], Point{X: iter, Y: v})
		}
	})
	return nil
}

func flatten(prefix string, obj map[string]any, emit func(string, float64)) {
	for k, v := range obj {
		name := k
		if prefix != "" {
			name = prefix + "/" + k
		}
		switch v := v.(type) {
		case float64:
			emit(name, v)
		case map[string]any:
			flatten(name, v, emit)
		}
	}
}

// replaceNonFinite rewrites bare NaN, Infinity and -Infinity tokens
// outside strings to null, so Python-written lines still parse.
func replaceNonFinite(line []byte) []byte {
	if !bytes.Contains(line, []byte("NaN")) && !bytes.Contains(line, []byte("Infinity")) {
		return line
	}
	out := make([]byte, 0, len(line))
	inStr, esc := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if inStr {
			out = append(out, c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
		case bytes.HasPrefix(line[i:], []byte("NaN")):
			out = append(out, "null"...)
			i += len("NaN") - 1
			continue
		case bytes.HasPrefix(line[i:], []byte("-Infinity")):
			out = append(out, "null"...)
			i += len("-Infinity") - 1
			continue
		case bytes.HasPrefix(line[i:], []byte("Infinity")):
			out = append(out, "null"...)
			i += len("Infinity") - 1
			continue
		}
		out = append(out, c)
	}
	return out
}

// sortDedup sorts pts by X (stable) and keeps the last point of each X.
func sortDedup(pts []Point) []Point {
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
	out := pts[:0]
	for i, p := range pts {
		if i+1 < len(pts) && pts[i+1].X == p.X {
			continue
		}
		out = append(out, p)
	}
	return out
}

var errNoIter = errors.New(`no numeric "iter" field`)
