// Package onnxpb holds the Go types of the ONNX protobuf schema, generated
// by protoc-gen-go v1.36.12 (google.golang.org/protobuf) from onnx.proto
// as shipped by ONNX 1.12 (Debian's python3-onnx 1.12.0,
// /usr/lib/python3/dist-packages/onnx/onnx.proto; IR version 8). The
// .proto file is vendored unchanged next to this file; it is ONNX Project
// Contributors' work under the Apache License 2.0 (SPDX header in the
// file; https://github.com/onnx/onnx/blob/main/LICENSE).
//
// Regenerate (protoc 3.21 from Debian's protobuf-compiler):
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	cd export/onnxpb && protoc --go_out=. --go_opt=paths=source_relative \
//	    --go_opt=Monnx.proto=github.com/skd-go/skd/export/onnxpb onnx.proto
package onnxpb
