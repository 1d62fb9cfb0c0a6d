"""Interoperability with the real Confluent Python client, driven by tests/registry.rs.

  produce URL      -> registers users_created-value through SchemaRegistryClient, serialises one
                      user (read as JSON from stdin) with AvroSerializer, prints the bytes as hex
  consume URL HEX  -> deserialises framed bytes with AvroDeserializer, prints the record as JSON
"""
import json
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

CTX = SerializationContext("users_created", MessageField.VALUE)


def main():
    mode, url = sys.argv[1], sys.argv[2]
    client = SchemaRegistryClient({"url": url})
    if mode == "produce":
        schema = open(sys.argv[3]).read()
        serializer = AvroSerializer(client, schema, conf={"auto.register.schemas": True})
        print(serializer(json.load(sys.stdin), CTX).hex())
    elif mode == "consume":
        deserializer = AvroDeserializer(client)
        print(json.dumps(deserializer(bytes.fromhex(sys.argv[3]), CTX)))


if __name__ == "__main__":
    main()
