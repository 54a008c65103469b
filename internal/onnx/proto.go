package onnx

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The few messages of onnx.proto (IR version 10) that Export writes, encoded by hand. Field
// numbers are those of onnx/onnx.proto; a message is appended to its parent as a
// length-delimited field.

// Field numbers of ModelProto.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelModelVersion    = 5
	modelDocString       = 6
	modelGraph           = 7
	modelOpsetImport     = 8
	modelMetadataProps   = 14
)

// Field numbers of OperatorSetIdProto and StringStringEntryProto.
const (
	opsetDomain  = 1
	opsetVersion = 2
	entryKey     = 1
	entryValue   = 2
)

// Field numbers of GraphProto.
const (
	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphDocString   = 10
	graphInput       = 11
	graphOutput      = 12
)

// Field numbers of NodeProto.
const (
	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
	nodeDomain    = 7
)

// Field numbers of AttributeProto and its AttributeType values.
const (
	attrName         = 1
	attrI            = 3
	attrS            = 4
	attrT            = 5
	attrIntsField    = 8
	attrStringsField = 9
	attrType         = 20

	attrTypeInt     = 2
	attrTypeString  = 3
	attrTypeTensor  = 4
	attrTypeInts    = 7
	attrTypeStrings = 8
)

// Field numbers of TensorProto and its DataType values.
const (
	tensorDims       = 1
	tensorDataType   = 2
	tensorStringData = 6
	tensorName       = 8
	tensorRawData    = 9

	typeUint8  = 2
	typeInt64  = 7
	typeString = 8
	typeDouble = 11
)

// Field numbers of ValueInfoProto, TypeProto, TypeProto.Tensor, TensorShapeProto and its
// Dimension.
const (
	valueInfoName      = 1
	valueInfoType      = 2
	typeTensorType     = 1
	tensorTypeElemType = 1
	tensorTypeShape    = 2
	shapeDim           = 1
	dimValue           = 1
	dimParam           = 2
)

// msg is an encoded protobuf message under construction.
type msg []byte

func (m msg) varint(num protowire.Number, v int64) msg {
	m = protowire.AppendTag(m, num, protowire.VarintType)
	return protowire.AppendVarint(m, uint64(v))
}

func (m msg) bytes(num protowire.Number, b []byte) msg {
	m = protowire.AppendTag(m, num, protowire.BytesType)
	return protowire.AppendBytes(m, b)
}

func (m msg) str(num protowire.Number, s string) msg {
	m = protowire.AppendTag(m, num, protowire.BytesType)
	return protowire.AppendString(m, s)
}

// sub appends a nested message.
func (m msg) sub(num protowire.Number, sub msg) msg { return m.bytes(num, sub) }

// attribute is an encoded AttributeProto.
type attribute msg

func attrInt(name string, v int64) attribute {
	return attribute(msg{}.str(attrName, name).varint(attrType, attrTypeInt).varint(attrI, v))
}

func attrString(name, v string) attribute {
	return attribute(msg{}.str(attrName, name).varint(attrType, attrTypeString).str(attrS, v))
}

func attrInts(name string, vs []int64) attribute {
	m := msg{}.str(attrName, name).varint(attrType, attrTypeInts)
	for _, v := range vs {
		m = m.varint(attrIntsField, v)
	}
	return attribute(m)
}

func attrStrings(name string, vs []string) attribute {
	m := msg{}.str(attrName, name).varint(attrType, attrTypeStrings)
	for _, v := range vs {
		m = m.str(attrStringsField, v)
	}
	return attribute(m)
}

func attrTensor(name string, t msg) attribute {
	return attribute(msg{}.str(attrName, name).varint(attrType, attrTypeTensor).sub(attrT, t))
}

// tensorHeader starts a TensorProto with its name (may be empty), dims and data type.
func tensorHeader(name string, dims []int64, dataType int64) msg {
	m := msg{}
	if name != "" {
		m = m.str(tensorName, name)
	}
	for _, d := range dims {
		m = m.varint(tensorDims, d)
	}
	return m.varint(tensorDataType, dataType)
}

// doubleTensor is a TensorProto of float64 values (raw_data, little-endian).
func doubleTensor(name string, dims []int64, vs []float64) msg {
	raw := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
	}
	return tensorHeader(name, dims, typeDouble).bytes(tensorRawData, raw)
}

// int64Tensor is a TensorProto of int64 values (raw_data, little-endian).
func int64Tensor(name string, dims []int64, vs []int64) msg {
	raw := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return tensorHeader(name, dims, typeInt64).bytes(tensorRawData, raw)
}

// uint8Tensor is a TensorProto of uint8 values (raw_data).
func uint8Tensor(name string, dims []int64, vs []uint8) msg {
	return tensorHeader(name, dims, typeUint8).bytes(tensorRawData, vs)
}

// stringTensor is a TensorProto of strings.
func stringTensor(name string, dims []int64, vs []string) msg {
	m := tensorHeader(name, dims, typeString)
	for _, v := range vs {
		m = m.str(tensorStringData, v)
	}
	return m
}

// valueInfo is a ValueInfoProto of a tensor whose dimensions are either a symbolic name
// (string) or a size (int).
func valueInfo(name string, elemType int64, dims ...any) msg {
	shape := msg{}
	for _, d := range dims {
		var dim msg
		switch d := d.(type) {
		case string:
			dim = dim.str(dimParam, d)
		case int:
			dim = dim.varint(dimValue, int64(d))
		}
		shape = shape.sub(shapeDim, dim)
	}
	tensor := msg{}.varint(tensorTypeElemType, elemType).sub(tensorTypeShape, shape)
	typ := msg{}.sub(typeTensorType, tensor)
	return msg{}.str(valueInfoName, name).sub(valueInfoType, typ)
}
