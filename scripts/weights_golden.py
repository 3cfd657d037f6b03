#!/usr/bin/python3
"""Writes the golden files of package model/weights (model/weights/testdata).

Run with Debian's interpreter, which has torch 1.13:

    /usr/bin/python3 scripts/weights_golden.py

Every file is tiny (a few KB). The Go tests never run Python: they read the
files written here and compare the loaded values exactly against the JSON
dumps (float32 values printed with repr of the exact double, so they parse
back bit for bit).
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "weights", "testdata")


def tiny_state_dict():
    """A resnet-like state dict with the layouts LoadPth must handle."""
    g = torch.Generator().manual_seed(1234)

    def rnd(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g).to(dtype)

    sd = collections.OrderedDict()
    sd["conv1.weight"] = rnd(4, 3, 3, 3)
    sd["bn1.weight"] = rnd(4)
    sd["bn1.bias"] = rnd(4)
    sd["bn1.running_mean"] = rnd(4)
    sd["bn1.running_var"] = rnd(4).abs() + 0.5
    sd["bn1.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    # A permuted (non-contiguous, 4-D) conv weight.
    sd["layer1.0.conv1.weight"] = rnd(2, 4, 1, 3).permute(0, 3, 1, 2)
    sd["layer1.0.bn1.num_batches_tracked"] = torch.tensor(0, dtype=torch.int64)
    # A transposed matrix: shape (5, 3), strides (1, 5).
    sd["fc.weight"] = rnd(3, 5).t()
    # A slice with a storage offset into a larger storage.
    sd["fc.bias"] = rnd(10)[4:9:2]
    # An expanded tensor: stride 0 on the second axis.
    sd["extra.expanded"] = rnd(3, 1).expand(3, 4)
    # Other float dtypes, converted to float32 by the loader.
    sd["extra.double"] = rnd(2, 2, dtype=torch.float64)
    sd["extra.half"] = rnd(3, dtype=torch.float16)
    # A 0-d scalar and an empty tensor.
    sd["extra.scalar"] = torch.tensor(2.5)
    sd["extra.empty"] = torch.zeros(0, 3)
    for k, v in sd.items():
        if k.endswith("layer1.0.conv1.weight") or k in ("fc.weight", "extra.expanded"):
            assert not v.is_contiguous(), k
    assert sd["fc.bias"].storage_offset() == 4
    return sd


def dump(sd):
    out = collections.OrderedDict()
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        f = v.float().contiguous()
        out[k] = {"shape": list(f.shape), "data": [float(x) for x in f.reshape(-1).tolist()]}
    return out


def write_json(name, obj):
    with open(os.path.join(OUT, name), "w") as fh:
        json.dump(obj, fh, indent=None, separators=(",", ":"))
        fh.write("\n")


def safetensors_bytes(tensors, metadata):
    """The safetensors format written by hand (the Python package is absent):
    8-byte little-endian header length, JSON header, raw little-endian data."""
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    off = 0
    for k, v in tensors.items():
        dt = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16"}[v.dtype]
        b = v.contiguous().numpy().tobytes()
        header[k] = {"dtype": dt, "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = tiny_state_dict()

    # torch >= 1.6 zip format and the legacy (pre-1.6) format.
    torch.save(sd, os.path.join(OUT, "tiny_resnet.pth"))
    torch.save(sd, os.path.join(OUT, "tiny_resnet_legacy.pth"), _use_new_zipfile_serialization=False)
    write_json("tiny_resnet.json", dump(sd))

    # Checkpoint wrappers: {"model": sd, ...} (plain dict) and {"state_dict": sd}.
    small = collections.OrderedDict((k, sd[k]) for k in ("conv1.weight", "fc.weight", "fc.bias"))
    torch.save({"model": dict(small), "epoch": 3, "iteration": 90000}, os.path.join(OUT, "wrapped_model.pth"))
    torch.save({"state_dict": small, "meta": {"note": "x"}}, os.path.join(OUT, "wrapped_state_dict.pth"))
    write_json("wrapped.json", dump(small))

    # Bad inputs.
    torch.save([torch.ones(2), torch.zeros(3)], os.path.join(OUT, "list.pth"))
    torch.save({"epoch": 3, "lr": 0.1}, os.path.join(OUT, "no_tensors.pth"))
    torch.save(collections.OrderedDict([("a.weight", torch.ones(2)), ("a.index", torch.arange(3, dtype=torch.int32))]),
               os.path.join(OUT, "int32.pth"))
    with open(os.path.join(OUT, "plain_pickle.pkl"), "wb") as fh:
        pickle.dump([1, 2, 3], fh, protocol=2)
    with zipfile.ZipFile(os.path.join(OUT, "no_pickle.pth"), "w") as z:
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data/0", b"\x00" * 16)
    g = torch.Generator().manual_seed(99)
    with open(os.path.join(OUT, "random.bin"), "wb") as fh:
        fh.write(bytes(torch.randint(0, 256, (512,), generator=g, dtype=torch.uint8).tolist()))

    # A safetensors file written on the Python side.
    st = collections.OrderedDict()
    st["backbone.conv1.weight"] = torch.randn(2, 3, 3, 3, generator=g)
    st["backbone.fc.bias"] = torch.randn(5, generator=g)
    st["head.double"] = torch.randn(2, 2, generator=g, dtype=torch.float64)
    st["head.half"] = torch.randn(4, generator=g).half()
    with open(os.path.join(OUT, "from_python.safetensors"), "wb") as fh:
        fh.write(safetensors_bytes(st, {"format": "pt", "source": "weights_golden.py"}))
    write_json("from_python.json", dump(st))


if __name__ == "__main__":
    main()
