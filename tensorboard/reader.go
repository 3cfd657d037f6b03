package tensorboard

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// ScalarEvent is one scalar read back from an event file.
type ScalarEvent struct {
	Tag      string
	Step     int64
	Value    float32 // simple_value is a float32 on disk
	WallTime float64 // seconds since the Unix epoch
}

// Event is the subset of tensorflow.Event that this package understands.
type Event struct {
	WallTime    float64
	Step        int64
	FileVersion string   // set on the first event of a file only
	Scalars     []Scalar // simple_value entries of the event's summary
	Offset      int64    // byte offset of the record in the file
}

// Scalar is one Summary.Value carrying a simple_value.
type Scalar struct {
	Tag   string
	Value float32
}

// ReadScalars reads the event file at path, checks every record's length
// and data CRCs, and returns its scalar events in file order. Summary values
// that are not simple_value scalars (images, histograms, tensors) are
// skipped. A truncated or corrupted file gives an error naming the path and
// the byte offset of the bad record.
func ReadScalars(path string) ([]ScalarEvent, error) {
	events, err := ReadEvents(path)
	if err != nil {
		return nil, err
	}
	var out []ScalarEvent
	for _, ev := range events {
		for _, s := range ev.Scalars {
			out = append(out, ScalarEvent{Tag: s.Tag, Step: ev.Step, Value: s.Value, WallTime: ev.WallTime})
		}
	}
	return out, nil
}

// ReadEvents reads and CRC-checks every record of the event file at path
// and decodes each as an Event. It requires the first event to carry a
// file_version starting with "brain.Event:".
func ReadEvents(path string) ([]Event, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tensorboard: %w", err)
	}
	var events []Event
	off := 0
	for off < len(data) {
		rec := data[off:]
		if len(rec) < 12 {
			return nil, fmt.Errorf("tensorboard: %s: truncated record header at offset %d (%d bytes left, need 12)", path, off, len(rec))
		}
		n := binary.LittleEndian.Uint64(rec[:8])
		if got, want := binary.LittleEndian.Uint32(rec[8:12]), MaskedCRC(rec[:8]); got != want {
			return nil, fmt.Errorf("tensorboard: %s: length CRC mismatch at offset %d (stored %#08x, computed %#08x)", path, off, got, want)
		}
		if len(rec) < 16 || n > uint64(len(rec)-16) {
			return nil, fmt.Errorf("tensorboard: %s: truncated record at offset %d (length %d, %d bytes left)", path, off, n, len(rec)-12)
		}
		payload := rec[12 : 12+n]
		if got, want := binary.LittleEndian.Uint32(rec[12+n:16+n]), MaskedCRC(payload); got != want {
			return nil, fmt.Errorf("tensorboard: %s: data CRC mismatch at offset %d (stored %#08x, computed %#08x)", path, off, got, want)
		}
		ev, err := decodeEvent(payload)
		if err != nil {
			return nil, fmt.Errorf("tensorboard: %s: record at offset %d: %w", path, off, err)
		}
		ev.Offset = int64(off)
		if len(events) == 0 && (len(ev.FileVersion) < len("brain.Event:") || ev.FileVersion[:len("brain.Event:")] != "brain.Event:") {
			return nil, fmt.Errorf("tensorboard: %s: first event has file_version %q, want %q", path, ev.FileVersion, FileVersion)
		}
		events = append(events, ev)
		off += 16 + int(n)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("tensorboard: %s: empty event file", path)
	}
	return events, nil
}

// consumeFields walks the protobuf fields of b, calling f for each one with
// its number, type and raw value bytes (for BytesType: the payload; for
// VarintType/Fixed32Type/Fixed64Type: the encoded value, decoded by f).
func consumeFields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad protobuf tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("bad protobuf field %d: %w", num, protowire.ParseError(m))
		}
		if err := f(num, typ, b[:m]); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

func wantType(num protowire.Number, got, want protowire.Type) error {
	if got != want {
		return fmt.Errorf("protobuf field %d has wire type %d, want %d", num, got, want)
	}
	return nil
}

func decodeEvent(b []byte) (Event, error) {
	var ev Event
	err := consumeFields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch num {
		case fieldEventWallTime:
			if err := wantType(num, typ, protowire.Fixed64Type); err != nil {
				return err
			}
			x, _ := protowire.ConsumeFixed64(v)
			ev.WallTime = math.Float64frombits(x)
		case fieldEventStep:
			if err := wantType(num, typ, protowire.VarintType); err != nil {
				return err
			}
			x, _ := protowire.ConsumeVarint(v)
			ev.Step = int64(x)
		case fieldEventFileVersion:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			s, _ := protowire.ConsumeBytes(v)
			ev.FileVersion = string(s)
		case fieldEventSummary:
			if err := wantType(num, typ, protowire.BytesType); err != nil {
				return err
			}
			s, _ := protowire.ConsumeBytes(v)
			sc, err := decodeSummary(s)
			if err != nil {
				return fmt.Errorf("summary: %w", err)
			}
			ev.Scalars = append(ev.Scalars, sc...)
		}
		return nil
	})
	return ev, err
}

func decodeSummary(b []byte) ([]Scalar, error) {
	var out []Scalar
	err := consumeFields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != fieldSummaryValue {
			return nil
		}
		if err := wantType(num, typ, protowire.BytesType); err != nil {
			return err
		}
		vb, _ := protowire.ConsumeBytes(v)
		var s Scalar
		hasSimple := false
		err := consumeFields(vb, func(num protowire.Number, typ protowire.Type, v []byte) error {
			switch num {
			case fieldValueTag:
				if err := wantType(num, typ, protowire.BytesType); err != nil {
					return err
				}
				t, _ := protowire.ConsumeBytes(v)
				s.Tag = string(t)
			case fieldValueSimpleValue:
				if err := wantType(num, typ, protowire.Fixed32Type); err != nil {
					return err
				}
				x, _ := protowire.ConsumeFixed32(v)
				s.Value = math.Float32frombits(x)
				hasSimple = true
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("value: %w", err)
		}
		if hasSimple {
			out = append(out, s)
		}
		return nil
	})
	return out, err
}

// ReadScalarsDir reads every events.out.tfevents.* file in dir (not
// recursively), in name order — that is, creation-time order, as the name
// holds the Unix seconds — and returns their scalars concatenated. This is
// how a run resumed into a new file is read back as one log.
func ReadScalarsDir(dir string) ([]ScalarEvent, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "events.out.tfevents.*"))
	if err != nil {
		return nil, fmt.Errorf("tensorboard: %s: %w", dir, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("tensorboard: %s: no events.out.tfevents.* files", dir)
	}
	sort.Strings(paths)
	var out []ScalarEvent
	for _, p := range paths {
		s, err := ReadScalars(p)
		if err != nil {
			return nil, err
		}
		out = append(out, s...)
	}
	return out, nil
}
