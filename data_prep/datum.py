"""Caffe's `Datum` message without importing Caffe.

The data preparation writes and reads LevelDB/LMDB records that Caffe's Data
layer parses as `caffe.Datum` (src/caffe/proto/caffe.proto at BVLC 99bd997).
Building the message class from its descriptor here keeps `data_prep` free of
pycaffe (it runs before Caffe is built); the bytes are the same, since a
protobuf encoding depends only on field numbers and types. A test parses our
records with pycaffe's `caffe_pb2.Datum` and compares the two descriptors.
"""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# caffe.proto, message Datum (proto2; float_data is not packed).
DATUM_FIELDS = (
    # name, number, type, label
    ("channels", 1, "TYPE_INT32", "LABEL_OPTIONAL"),
    ("height", 2, "TYPE_INT32", "LABEL_OPTIONAL"),
    ("width", 3, "TYPE_INT32", "LABEL_OPTIONAL"),
    ("data", 4, "TYPE_BYTES", "LABEL_OPTIONAL"),
    ("label", 5, "TYPE_INT32", "LABEL_OPTIONAL"),
    ("float_data", 6, "TYPE_FLOAT", "LABEL_REPEATED"),
    ("encoded", 7, "TYPE_BOOL", "LABEL_OPTIONAL"),
)


def _build():
    proto = descriptor_pb2.FileDescriptorProto(
        name="heobs_datum.proto", package="caffe", syntax="proto2")
    message = proto.message_type.add(name="Datum")
    for name, number, kind, label in DATUM_FIELDS:
        field = message.field.add(name=name, number=number,
                                  type=getattr(descriptor_pb2.FieldDescriptorProto, kind),
                                  label=getattr(descriptor_pb2.FieldDescriptorProto, label))
        if name == "encoded":
            field.default_value = "false"
        if name == "float_data":
            # Written packed (one length-prefixed run of little-endian floats):
            # Caffe's parser takes a repeated scalar field in either form, the
            # same values, and a packed run parses as one copy instead of a tag
            # and a value per float — the Data layer's prefetch thread took a
            # core from the GEMMs for milliseconds a batch (dec/bench/README.md).
            field.options.packed = True
    # A private pool: pycaffe registers its own caffe.Datum in the default one.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("caffe.Datum")
    if hasattr(message_factory, "GetMessageClass"):          # protobuf >= 4.22
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


Datum = _build()
