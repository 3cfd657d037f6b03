// Package tensorboard writes TensorBoard event files holding scalar
// summaries, with no TensorFlow dependency, and reads them back.
//
// An event file is a sequence of TFRecord records. Each record is
//
//	uint64 little-endian length of data
//	uint32 little-endian masked CRC32-C of the 8 length bytes
//	data (a serialized tensorflow.Event protobuf)
//	uint32 little-endian masked CRC32-C of data
//
// where mask(crc) = ((crc >> 15) | (crc << 17)) + 0xa282ead8. The first
// record is an Event carrying file_version "brain.Event:2"; each scalar is
// an Event whose summary holds one Summary.Value{tag, simple_value}.
//
// The protobuf messages are encoded by hand with protowire, using the field
// numbers of tensorflow/core/util/event.proto and
// tensorflow/core/framework/summary.proto:
//
//	Event:   wall_time=1 (double), step=2 (int64), file_version=3 (string), summary=5 (Summary)
//	Summary: value=1 (repeated Value)
//	Value:   tag=1 (string), simple_value=2 (float)
//
// A resumed run should open a new Writer (hence a new file) in the same
// directory: TensorBoard merges all event files of a run directory.
package tensorboard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// FileVersion is the file_version string of the first event of every file.
const FileVersion = "brain.Event:2"

// Protobuf field numbers (see the package comment).
const (
	fieldEventWallTime    protowire.Number = 1
	fieldEventStep        protowire.Number = 2
	fieldEventFileVersion protowire.Number = 3
	fieldEventSummary     protowire.Number = 5
	fieldSummaryValue     protowire.Number = 1
	fieldValueTag         protowire.Number = 1
	fieldValueSimpleValue protowire.Number = 2
)

const maskDelta = 0xa282ead8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the CRC-32 (Castagnoli polynomial) of b.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// MaskedCRC returns the TFRecord masked CRC32-C of b.
func MaskedCRC(b []byte) uint32 { return Mask(CRC32C(b)) }

// Mask applies the TFRecord CRC mask: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
func Mask(crc uint32) uint32 { return ((crc >> 15) | (crc << 17)) + maskDelta }

// Writer appends scalar events to one event file. It is buffered: records
// reach the file on Flush and Close (and whenever the buffer fills).
//
// A Writer is not safe for concurrent use: call it from one goroutine only
// (or guard it with a mutex).
type Writer struct {
	f      *os.File
	bw     *bufio.Writer
	path   string
	closed bool
	rec    []byte // scratch for record encoding
}

// NewWriter creates dir if needed and a new event file in it named
// events.out.tfevents.<unix seconds>.<hostname>, and writes the
// file_version event. If a file of that name already exists (two writers
// in the same second), a numeric suffix is appended so that no file is
// ever overwritten.
func NewWriter(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("tensorboard: create log dir: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	now := time.Now()
	base := filepath.Join(dir, fmt.Sprintf("events.out.tfevents.%d.%s", now.Unix(), host))
	var f *os.File
	path := base
	for i := 1; ; i++ {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || i > 1000 {
			return nil, fmt.Errorf("tensorboard: create event file: %w", err)
		}
		path = base + "." + strconv.Itoa(i)
	}
	w := &Writer{f: f, bw: bufio.NewWriterSize(f, 64<<10), path: path}
	if err := w.writeRecord(encodeVersionEvent(now)); err != nil {
		f.Close()
		return nil, err
	}
	// Make the file recognisable by TensorBoard at once.
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, err
	}
	return w, nil
}

// Path returns the path of the event file.
func (w *Writer) Path() string { return w.path }

// Scalar appends one scalar event (tag, step, value) stamped with wall.
// value is stored as a float32 (simple_value), as TensorBoard does.
func (w *Writer) Scalar(tag string, step int64, value float64, wall time.Time) error {
	if w.closed {
		return fmt.Errorf("tensorboard: %s: write after Close", w.path)
	}
	if tag == "" {
		return fmt.Errorf("tensorboard: %s: empty tag", w.path)
	}
	return w.writeRecord(encodeScalarEvent(tag, step, value, wall))
}

// Scalars appends one scalar event per entry of values, all with the given
// step and the current wall time, in sorted tag order.
func (w *Writer) Scalars(step int64, values map[string]float64) error {
	tags := make([]string, 0, len(values))
	for t := range values {
		tags = append(tags, t)
	}
	sort.Strings(tags)
	now := time.Now()
	for _, t := range tags {
		if err := w.Scalar(t, step, values[t], now); err != nil {
			return err
		}
	}
	return nil
}

// Flush writes buffered records to the file (without fsync).
func (w *Writer) Flush() error {
	if w.closed {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("tensorboard: flush %s: %w", w.path, err)
	}
	return nil
}

// Close flushes, syncs and closes the file. Calling Close twice is a no-op.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	ferr := w.Flush()
	w.closed = true
	serr := w.f.Sync()
	cerr := w.f.Close()
	if ferr != nil {
		return ferr
	}
	if serr != nil {
		return fmt.Errorf("tensorboard: sync %s: %w", w.path, serr)
	}
	if cerr != nil {
		return fmt.Errorf("tensorboard: close %s: %w", w.path, cerr)
	}
	return nil
}

func (w *Writer) writeRecord(data []byte) error {
	w.rec = appendRecord(w.rec[:0], data)
	if _, err := w.bw.Write(w.rec); err != nil {
		return fmt.Errorf("tensorboard: write %s: %w", w.path, err)
	}
	return nil
}

// appendRecord appends the TFRecord framing of data to dst.
func appendRecord(dst, data []byte) []byte {
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(len(data)))
	dst = append(dst, hdr[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, MaskedCRC(hdr[:]))
	dst = append(dst, data...)
	dst = binary.LittleEndian.AppendUint32(dst, MaskedCRC(data))
	return dst
}

// wallSeconds converts t to seconds since the epoch; summing the whole and
// fractional seconds keeps exact fractions such as .25 exact (UnixNano/1e9
// does not).
func wallSeconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

func encodeVersionEvent(wall time.Time) []byte {
	var b []byte
	b = protowire.AppendTag(b, fieldEventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(wallSeconds(wall)))
	b = protowire.AppendTag(b, fieldEventStep, protowire.VarintType)
	b = protowire.AppendVarint(b, 0)
	b = protowire.AppendTag(b, fieldEventFileVersion, protowire.BytesType)
	b = protowire.AppendString(b, FileVersion)
	return b
}

func encodeScalarEvent(tag string, step int64, value float64, wall time.Time) []byte {
	var val []byte
	val = protowire.AppendTag(val, fieldValueTag, protowire.BytesType)
	val = protowire.AppendString(val, tag)
	val = protowire.AppendTag(val, fieldValueSimpleValue, protowire.Fixed32Type)
	val = protowire.AppendFixed32(val, math.Float32bits(float32(value)))

	var sum []byte
	sum = protowire.AppendTag(sum, fieldSummaryValue, protowire.BytesType)
	sum = protowire.AppendBytes(sum, val)

	var b []byte
	b = protowire.AppendTag(b, fieldEventWallTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(wallSeconds(wall)))
	b = protowire.AppendTag(b, fieldEventStep, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(step))
	b = protowire.AppendTag(b, fieldEventSummary, protowire.BytesType)
	b = protowire.AppendBytes(b, sum)
	return b
}
