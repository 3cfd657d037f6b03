package weights

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/pytorch"
	"github.com/nlpodyssey/gopickle/types"
)

// This file holds the container side of torch.save files (zip records or the
// legacy byte stream); gopickle's pickle package runs the pickles and its
// pytorch package supplies the tensor and storage types.
//
// Why not pytorch.Load: gopickle allocates whatever sizes the file states
// (storage element counts, pickle string lengths) before reading, so one
// corrupt byte can ask for terabytes and kill the process with an
// unrecoverable "out of memory"; it also panics on some legacy files. Here
// every stated size is checked against the bytes actually present first.

// maxPickleBytes bounds the pickle part of a checkpoint (resnet101's is ~60 KB).
const maxPickleBytes = 1 << 28

// storageClass returns gopickle's class for a torch storage type and its
// element size in bytes.
func storageClass(name string) (pytorch.StorageClassInterface, int, bool) {
	switch name {
	case "FloatStorage":
		return &pytorch.FloatStorageClass{}, 4, true
	case "HalfStorage":
		return &pytorch.HalfStorageClass{}, 2, true
	case "BFloat16Storage":
		return &pytorch.BFloat16StorageClass{}, 2, true
	case "DoubleStorage":
		return &pytorch.DoubleStorageClass{}, 8, true
	case "LongStorage":
		return &pytorch.LongStorageClass{}, 8, true
	case "IntStorage":
		return &pytorch.IntStorageClass{}, 4, true
	case "ShortStorage":
		return &pytorch.ShortStorageClass{}, 2, true
	case "CharStorage":
		return &pytorch.CharStorageClass{}, 1, true
	case "ByteStorage":
		return &pytorch.ByteStorageClass{}, 1, true
	case "BoolStorage":
		return &pytorch.BoolStorageClass{}, 1, true
	}
	return nil, 0, false
}

// storageType is what the pickle's GLOBAL "torch FloatStorage" resolves to.
type storageType struct {
	name     string
	class    pytorch.StorageClassInterface
	elemSize int
}

// pendingStorage is a storage whose bytes are read after the pickle (legacy).
type pendingStorage struct {
	typ     *storageType
	numel   int
	storage pytorch.StorageInterface
}

func newTorchUnpickler(data []byte) pickle.Unpickler {
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = func(module, name string) (interface{}, error) {
		switch module {
		case "torch._utils":
			switch name {
			case "_rebuild_tensor_v2":
				return &pytorch.RebuildTensorV2{}, nil
			case "_rebuild_parameter":
				return rebuildParameter{}, nil
			}
		case "torch":
			if cls, size, ok := storageClass(name); ok {
				return &storageType{name: name, class: cls, elemSize: size}, nil
			}
		}
		return &pyClass{module: module, name: name}, nil
	}
	return u
}

// pyClass stands for a Python class the loader does not know, such as the
// nn.Module subclasses of a whole model pickled by torch.save(model). Its
// instances take the state that BUILD gives them (and ignore it), so such a
// file loads to a *pyObject and the caller can say what it holds instead
// of failing inside the unpickler. Nothing is ever executed.
type pyClass struct{ module, name string }

// PyNew implements types.PyNewable (NEWOBJ).
func (c *pyClass) PyNew(args ...interface{}) (interface{}, error) { return &pyObject{class: c}, nil }

// Call implements types.Callable (REDUCE).
func (c *pyClass) Call(args ...interface{}) (interface{}, error) { return &pyObject{class: c}, nil }

// pyObject is an instance of a pyClass.
type pyObject struct{ class *pyClass }

// PyDictSet implements types.PyDictSettable (BUILD): the state is dropped.
func (o *pyObject) PyDictSet(key, value interface{}) error { return nil }

// PySetAttr implements types.PyAttrSettable (BUILD with slots).
func (o *pyObject) PySetAttr(key string, value interface{}) error { return nil }

// rebuildParameter stands for torch._utils._rebuild_parameter(data,
// requires_grad, backward_hooks): an nn.Parameter is loaded as its tensor.
type rebuildParameter struct{}

// Call implements types.Callable.
func (rebuildParameter) Call(args ...interface{}) (interface{}, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("_rebuild_parameter: no arguments")
	}
	return args[0], nil
}

// storageID decodes the persistent id torch.save writes for a storage:
// ('storage', storage_type, key, location, numel[, view_metadata]).
func storageID(savedID interface{}) (*storageType, string, int, *types.Tuple, error) {
	tuple, ok := savedID.(*types.Tuple)
	if !ok || tuple.Len() < 5 {
		return nil, "", 0, nil, fmt.Errorf("persistent id %v is not a storage tuple", savedID)
	}
	if s, _ := tuple.Get(0).(string); s != "storage" {
		return nil, "", 0, nil, fmt.Errorf("persistent id of kind %v, want storage", tuple.Get(0))
	}
	typ, ok1 := tuple.Get(1).(*storageType)
	key, ok2 := tuple.Get(2).(string)
	numel, ok3 := tuple.Get(4).(int)
	if !ok1 {
		return nil, "", 0, nil, fmt.Errorf("storage of unknown type %s", pyTypeName(tuple.Get(1)))
	}
	if !ok2 || !ok3 || numel < 0 {
		return nil, "", 0, nil, fmt.Errorf("malformed storage id %v", savedID)
	}
	return typ, key, numel, tuple, nil
}

// loadZip reads a torch >= 1.6 zip checkpoint.
func loadZip(path string) (interface{}, error) {
	r, err := zip.OpenReader(path)
	if err != nil {
		return nil, fmt.Errorf("truncated or corrupt zip archive (%v)", err)
	}
	defer r.Close()
	records := map[string]*zip.File{}
	var pkl *zip.File
	prefix := ""
	for _, f := range r.File {
		if f.Name == "data.pkl" || strings.HasSuffix(f.Name, "/data.pkl") {
			pkl = f
			prefix = strings.TrimSuffix(f.Name, "data.pkl")
		}
		records[f.Name] = f
	}
	if pkl == nil {
		return nil, fmt.Errorf("zip archive without data.pkl: not a torch.save file")
	}
	if pkl.UncompressedSize64 > maxPickleBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", pkl.Name, pkl.UncompressedSize64, maxPickleBytes)
	}
	data, err := readRecord(pkl, int64(pkl.UncompressedSize64))
	if err != nil {
		return nil, err
	}
	if err := checkPickle(data); err != nil {
		return nil, fmt.Errorf("data.pkl: %v", err)
	}
	loaded := map[string]pytorch.StorageInterface{}
	u := newTorchUnpickler(data)
	u.PersistentLoad = func(savedID interface{}) (interface{}, error) {
		typ, key, numel, _, err := storageID(savedID)
		if err != nil {
			return nil, err
		}
		if s, ok := loaded[key]; ok {
			return s, nil
		}
		rec, ok := records[prefix+"data/"+key]
		if !ok {
			return nil, fmt.Errorf("storage record %q missing from the archive", prefix+"data/"+key)
		}
		if uint64(numel)*uint64(typ.elemSize) > rec.UncompressedSize64 {
			return nil, fmt.Errorf("storage %q claims %d %s elements but its record holds %d bytes", key, numel, typ.name, rec.UncompressedSize64)
		}
		raw, err := readRecord(rec, int64(numel)*int64(typ.elemSize))
		if err != nil {
			return nil, err
		}
		s := typ.class.New(numel, "cpu")
		if err := s.SetFromFileWithSize(bytes.NewReader(raw), numel); err != nil {
			return nil, fmt.Errorf("storage %q: %v", key, err)
		}
		loaded[key] = s
		return s, nil
	}
	obj, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %v", err)
	}
	return obj, nil
}

// readRecord reads the first n bytes of a zip record (n <= its size).
func readRecord(f *zip.File, n int64) ([]byte, error) {
	if n < 0 || uint64(n) > f.UncompressedSize64 {
		return nil, fmt.Errorf("record %s is %d bytes, want %d", f.Name, f.UncompressedSize64, n)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("record %s: %v", f.Name, err)
	}
	defer rc.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, fmt.Errorf("record %s: %v", f.Name, err)
	}
	return buf, nil
}

// legacyMagic is torch's MAGIC_NUMBER, 0x1950a86a20f9469cfc6c.
var legacyMagic, _ = new(big.Int).SetString("1950a86a20f9469cfc6c", 16)

// loadLegacy reads the pre-1.6 format: pickles of the magic number, the
// protocol version (1001), system info, the object and the storage keys,
// then each storage as an int64 element count and its raw bytes.
func loadLegacy(path string) (interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	off := 0
	// next prepares an unpickler for the pickle at off and returns its end.
	next := func(what string) (pickle.Unpickler, int, error) {
		end, err := pickleEnd(data, off)
		if err != nil {
			return pickle.Unpickler{}, 0, fmt.Errorf("%s pickle: %v", what, err)
		}
		return newTorchUnpickler(data[off:end]), end, nil
	}
	simple := func(what string) (interface{}, error) {
		u, end, err := next(what)
		if err != nil {
			return nil, err
		}
		v, err := u.Load()
		if err != nil {
			return nil, fmt.Errorf("%s pickle: %v", what, err)
		}
		off = end
		return v, nil
	}
	magic, err := simple("magic number")
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(legacyMagic) != 0 {
		return nil, fmt.Errorf("a pickle but not a torch.save file (no torch magic number)")
	}
	proto, err := simple("protocol version")
	if err != nil {
		return nil, err
	}
	if p, ok := proto.(int); !ok || p != 1001 {
		return nil, fmt.Errorf("unsupported legacy protocol version %v", proto)
	}
	if _, err := simple("system info"); err != nil {
		return nil, err
	}

	storages := map[string]*pendingStorage{}
	u, end, err := next("object")
	if err != nil {
		return nil, err
	}
	u.PersistentLoad = func(savedID interface{}) (interface{}, error) {
		typ, key, numel, tuple, err := storageID(savedID)
		if err != nil {
			return nil, err
		}
		if tuple.Len() >= 6 && tuple.Get(5) != nil {
			return nil, fmt.Errorf("storage %q is a storage view (torch < 0.4 format): unsupported", key)
		}
		if p, ok := storages[key]; ok {
			return p.storage, nil
		}
		if uint64(numel)*uint64(typ.elemSize) > uint64(len(data)) {
			return nil, fmt.Errorf("storage %q claims %d %s elements, more than the file holds", key, numel, typ.name)
		}
		p := &pendingStorage{typ: typ, numel: numel, storage: typ.class.New(numel, "cpu")}
		storages[key] = p
		return p.storage, nil
	}
	obj, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("object pickle: %v", err)
	}
	off = end
	rawKeys, err := simple("storage keys")
	if err != nil {
		return nil, err
	}
	list, ok := rawKeys.(*types.List)
	if !ok {
		return nil, fmt.Errorf("storage key list is a %s", pyTypeName(rawKeys))
	}
	for _, rk := range *list {
		key, ok := rk.(string)
		if !ok {
			return nil, fmt.Errorf("storage key %v is not a string", rk)
		}
		p, ok := storages[key]
		if !ok {
			return nil, fmt.Errorf("storage %q listed but not used by the object", key)
		}
		if len(data)-off < 8 {
			return nil, fmt.Errorf("file ends before storage %q", key)
		}
		n := binary.LittleEndian.Uint64(data[off:])
		off += 8
		if n != uint64(p.numel) {
			return nil, fmt.Errorf("storage %q holds %d elements, the object says %d", key, n, p.numel)
		}
		nbytes := p.numel * p.typ.elemSize
		if len(data)-off < nbytes {
			return nil, fmt.Errorf("file ends inside storage %q (%d of %d bytes)", key, len(data)-off, nbytes)
		}
		if err := p.storage.SetFromFileWithSize(bytes.NewReader(data[off:off+nbytes]), p.numel); err != nil {
			return nil, fmt.Errorf("storage %q: %v", key, err)
		}
		off += nbytes
		delete(storages, key)
	}
	if len(storages) > 0 {
		return nil, fmt.Errorf("%d storages used by the object are missing from the file", len(storages))
	}
	return obj, nil
}

// checkPickle walks a whole pickle's opcodes and checks that it ends with
// STOP exactly at the end of data.
func checkPickle(data []byte) error {
	end, err := pickleEnd(data, 0)
	if err != nil {
		return err
	}
	if end != len(data) {
		return fmt.Errorf("%d trailing bytes after the pickle", len(data)-end)
	}
	return nil
}

// pickleEnd walks the opcodes of the pickle starting at data[start:] (the
// way Python's pickletools.genops does) and returns the offset just past its
// STOP. Every length argument is checked against the bytes left, so that
// the unpickler never allocates more than the file holds.
func pickleEnd(data []byte, start int) (int, error) {
	i := start
	need := func(n uint64) error {
		if n > uint64(len(data)-i) {
			return fmt.Errorf("opcode at byte %d needs %d bytes, %d left (truncated or corrupt)", i, n, len(data)-i)
		}
		return nil
	}
	line := func() error {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			return fmt.Errorf("unterminated text argument at byte %d", i)
		}
		i += j + 1
		return nil
	}
	lenArg := func(size int) (uint64, error) {
		if err := need(uint64(size)); err != nil {
			return 0, err
		}
		var n uint64
		switch size {
		case 1:
			n = uint64(data[i])
		case 4:
			n = uint64(binary.LittleEndian.Uint32(data[i:]))
		case 8:
			n = binary.LittleEndian.Uint64(data[i:])
		}
		i += size
		return n, need(n)
	}
	for {
		if i >= len(data) {
			return 0, fmt.Errorf("pickle ends without STOP (truncated)")
		}
		op := data[i]
		i++
		var err error
		switch op {
		case '.': // STOP
			return i, nil
		case '(', '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
			// no argument
		case 'K', 'h', 'q', 0x80, 0x82: // one byte
			err = need(1)
			i++
		case 'M', 0x83: // two bytes
			err = need(2)
			i += 2
		case 'J', 'j', 'r', 0x84: // four bytes
			err = need(4)
			i += 4
		case 'G': // BINFLOAT
			err = need(8)
			i += 8
		case 0x95: // FRAME: 8-byte length, then the framed opcodes follow
			_, err = lenArg(8)
		case 'F', 'I', 'L', 'P', 'S', 'V', 'g', 'p': // text line
			err = line()
		case 'c', 'i': // GLOBAL, INST: two lines
			if err = line(); err == nil {
				err = line()
			}
		case 'U', 'C', 0x8a, 0x8c: // one-byte length
			var n uint64
			n, err = lenArg(1)
			i += int(n)
		case 'T', 'X', 'B', 0x8b: // four-byte length
			var n uint64
			n, err = lenArg(4)
			i += int(n)
		case 0x8d, 0x8e, 0x96: // eight-byte length
			var n uint64
			n, err = lenArg(8)
			if err == nil {
				i += int(n)
			}
		default:
			return 0, fmt.Errorf("unknown pickle opcode 0x%02x at byte %d (not a pickle, or corrupt)", op, i-1)
		}
		if err != nil {
			return 0, err
		}
		if i > len(data) {
			return 0, fmt.Errorf("pickle truncated at byte %d", len(data))
		}
	}
}
