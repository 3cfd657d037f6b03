package tensorboard

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCRC32CKnownVector(t *testing.T) {
	// Standard CRC-32C check value (RFC 3720 / iSCSI).
	if got := CRC32C([]byte("123456789")); got != 0xE3069283 {
		t.Fatalf("CRC32C(123456789) = %#08x, want 0xe3069283", got)
	}
	// ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xa282ead8 mod 2^32,
	// computed independently in Python.
	if got := MaskedCRC([]byte("123456789")); got != 0xc78ab0e5 {
		t.Fatalf("MaskedCRC(123456789) = %#08x, want 0xc78ab0e5", got)
	}
	if got := Mask(0); got != 0xa282ead8 {
		t.Fatalf("Mask(0) = %#08x, want 0xa282ead8", got)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEncodingBytes checks the protobuf encoding against bytes written by
// hand from the field numbers of event.proto / summary.proto.
func TestEncodingBytes(t *testing.T) {
	wall := time.Unix(1700000000, 250_000_000) // 1700000000.25 s
	// Event{wall_time: 1700000000.25, step: 0, file_version: "brain.Event:2"}
	want := mustHex(t, "09 00001040fc54d941"+ // field 1, fixed64: double LE
		"10 00"+ // field 2, varint 0
		"1a 0d"+hex.EncodeToString([]byte("brain.Event:2"))) // field 3, len 13
	if got := encodeVersionEvent(wall); !bytes.Equal(got, want) {
		t.Fatalf("version event\n got %x\nwant %x", got, want)
	}

	// Event{wall_time, step: 300, summary: {value: [{tag: "loss", simple_value: 0.5}]}}
	want = mustHex(t, "09 00001040fc54d941"+
		"10 ac02"+ // varint 300
		"2a 0d"+ // field 5 (summary), 13 bytes
		"0a 0b"+ // Summary.value (field 1), 11 bytes
		"0a 04"+hex.EncodeToString([]byte("loss"))+ // Value.tag
		"15 0000003f") // Value.simple_value (field 2, fixed32) = 0.5f
	if got := encodeScalarEvent("loss", 300, 0.5, wall); !bytes.Equal(got, want) {
		t.Fatalf("scalar event\n got %x\nwant %x", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs", "run1")
	w, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	base := filepath.Base(w.Path())
	if !strings.HasPrefix(base, "events.out.tfevents.") || (host != "" && !strings.Contains(base, "."+host)) {
		t.Fatalf("file name %q does not follow events.out.tfevents.<secs>.<host>", base)
	}
	wall := time.Unix(1700000000, 500_000_000)
	type in struct {
		tag  string
		step int64
		v    float64
	}
	inputs := []in{{"loss/total", 0, 2.5}, {"loss/total", 20, 1.25}, {"lr", 20, 0.02}, {"loss/total", 1 << 40, -3.75}, {"ap", 7, math.Inf(1)}}
	for _, x := range inputs {
		if err := w.Scalar(x.tag, x.step, x.v, wall); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Scalars(99, map[string]float64{"b": 2, "a": 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.Scalar("", 1, 1, wall); err == nil {
		t.Fatal("empty tag accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.Scalar("x", 1, 1, wall); err == nil {
		t.Fatal("write after Close accepted")
	}

	got, err := ReadScalars(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(inputs)+2 {
		t.Fatalf("read %d scalars, want %d", len(got), len(inputs)+2)
	}
	for i, x := range inputs {
		g := got[i]
		if g.Tag != x.tag || g.Step != x.step || g.Value != float32(x.v) || g.WallTime != 1700000000.5 {
			t.Errorf("scalar %d = %+v, want %+v wall 1700000000.5", i, g, x)
		}
	}
	if a, b := got[len(inputs)], got[len(inputs)+1]; a.Tag != "a" || a.Value != 1 || a.Step != 99 || b.Tag != "b" || b.Value != 2 {
		t.Errorf("Scalars wrote %+v %+v, want a=1, b=2 at step 99", a, b)
	}

	evs, err := ReadEvents(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	if evs[0].FileVersion != FileVersion || evs[0].Step != 0 || len(evs[0].Scalars) != 0 {
		t.Fatalf("first event = %+v", evs[0])
	}
	if d := time.Since(time.Unix(0, int64(evs[0].WallTime*1e9))); d < 0 || d > time.Minute {
		t.Fatalf("first event wall time %v is not now", evs[0].WallTime)
	}
}

// TestFirstRecordBytes decodes the first record of a fresh file by hand:
// framing, CRCs and the protobuf fields of the version event.
func TestFirstRecordBytes(t *testing.T) {
	w, err := NewWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	// 9 (wall_time) + 2 (step) + 15 (file_version) = 26 bytes of data.
	if len(b) != 8+4+26+4 {
		t.Fatalf("file is %d bytes, want 42", len(b))
	}
	if n := binary.LittleEndian.Uint64(b[:8]); n != 26 {
		t.Fatalf("length %d, want 26", n)
	}
	if binary.LittleEndian.Uint32(b[8:12]) != bitwiseMasked(b[:8]) {
		t.Fatal("length CRC differs from bitwise CRC32C")
	}
	data := b[12:38]
	if binary.LittleEndian.Uint32(b[38:42]) != bitwiseMasked(data) {
		t.Fatal("data CRC differs from bitwise CRC32C")
	}
	if data[0] != 0x09 || data[9] != 0x10 || data[10] != 0 || data[11] != 0x1a || data[12] != 13 || string(data[13:]) != "brain.Event:2" {
		t.Fatalf("version event bytes %x", data)
	}
	wall := math.Float64frombits(binary.LittleEndian.Uint64(data[1:9]))
	if math.Abs(wall-float64(time.Now().UnixNano())/1e9) > 60 {
		t.Fatalf("wall_time %v is not now", wall)
	}
}

// bitwiseMasked is an independent, table-free CRC-32C (reflected
// polynomial 0x82F63B78) with the TFRecord mask.
func bitwiseMasked(b []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range b {
		crc ^= uint32(c)
		for k := 0; k < 8; k++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0x82F63B78
			} else {
				crc >>= 1
			}
		}
	}
	crc = ^crc
	return ((crc >> 15) | (crc << 17)) + 0xa282ead8
}

func writeSample(t *testing.T) (string, []byte) {
	t.Helper()
	w, err := NewWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := w.Scalar("loss", int64(i), float64(i), time.Unix(1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(w.Path())
	if err != nil {
		t.Fatal(err)
	}
	return w.Path(), b
}

func TestCorruptAndTruncated(t *testing.T) {
	path, orig := writeSample(t)
	first := 42                                                     // version record
	scalarLen := 16 + int(binary.LittleEndian.Uint64(orig[first:])) // one scalar record
	second := first + scalarLen                                     // offset of the 2nd scalar
	if len(orig) != first+3*scalarLen {
		t.Fatalf("file is %d bytes, want %d", len(orig), first+3*scalarLen)
	}
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		want   []string
	}{
		{"truncated data", func(b []byte) []byte { return b[:len(b)-5] }, []string{"truncated record", "offset " + itoa(first+2*scalarLen)}},
		{"truncated header", func(b []byte) []byte { return b[:second+7] }, []string{"truncated record header", "offset " + itoa(second)}},
		{"data byte flipped", func(b []byte) []byte { b[second+14] ^= 0x40; return b }, []string{"data CRC mismatch", "offset " + itoa(second)}},
		{"length byte flipped", func(b []byte) []byte { b[second] ^= 1; return b }, []string{"length CRC mismatch", "offset " + itoa(second)}},
		{"data CRC flipped", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }, []string{"data CRC mismatch", "offset " + itoa(first+2*scalarLen)}},
	}
	for _, c := range cases {
		b := c.mutate(append([]byte(nil), orig...))
		p := filepath.Join(t.TempDir(), "events.out.tfevents.1.bad")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadScalars(p)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range append(c.want, p) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
	// The intact file still reads.
	if s, err := ReadScalars(path); err != nil || len(s) != 3 || s[2].Value != 2 {
		t.Fatalf("intact file: %v %v", s, err)
	}
	// A file that does not start with a version event is rejected.
	p := filepath.Join(t.TempDir(), "noversion")
	if err := os.WriteFile(p, appendRecord(nil, encodeScalarEvent("x", 1, 1, time.Unix(1, 0))), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadScalars(p); err == nil || !strings.Contains(err.Error(), "file_version") {
		t.Fatalf("file without version event: err = %v", err)
	}
	if _, err := ReadScalars(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestTwoWritersSameSecond checks that a second writer in the same
// directory never overwrites the first file.
func TestTwoWritersSameSecond(t *testing.T) {
	dir := t.TempDir()
	w1, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if w1.Path() == w2.Path() {
		t.Fatalf("two writers share %s", w1.Path())
	}
	w1.Close()
	w2.Close()
}

// TestPythonCrossCheck reads a file written here with TensorBoard's own
// loader when /usr/bin/python3 has tensorboard installed; skipped otherwise.
func TestPythonCrossCheck(t *testing.T) {
	py := "/usr/bin/python3"
	if testing.Short() {
		t.Skip("short mode")
	}
	if err := exec.Command(py, "-c", "import tensorboard").Run(); err != nil {
		t.Skip("no tensorboard in /usr/bin/python3")
	}
	w, err := NewWriter(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w.Scalar("loss", 5, 0.25, time.Unix(1700000000, 0))
	w.Close()
	script := `
import sys
from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2
evs = [event_pb2.Event.FromString(r) for r in RawEventFileLoader(sys.argv[1]).Load()]
assert evs[0].file_version == "brain.Event:2", evs[0]
v = evs[1].summary.value[0]
print(evs[1].step, v.tag, v.simple_value, evs[1].wall_time)
`
	out, err := exec.Command(py, "-c", script, w.Path()).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "5 loss 0.25 1700000000.0" {
		t.Fatalf("python read %q", got)
	}
}

// TestReadScalarsDir checks that a resumed run (a second file in the same
// directory) reads back as one log in file order.
func TestReadScalarsDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadScalarsDir(dir); err == nil {
		t.Fatal("empty dir: no error")
	}
	for run, steps := range [][]int64{{1, 2}, {3}} {
		w, err := NewWriter(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			if err := w.Scalar("loss", s, float64(10*s+int64(run)), time.Unix(1, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadScalarsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Value != 10 || got[1].Value != 20 || got[2].Value != 31 || got[2].Step != 3 {
		t.Fatalf("got %+v", got)
	}
}
