"""Interoperability with the real Confluent Python client, driven by tests/registry.rs.

  produce URL      -> registers users_created-value through SchemaRegistryClient, serialises one
                      user (read as JSON from stdin) with AvroSerializer, prints the bytes as hex
  consume URL HEX  -> deserialises framed bytes with AvroDeserializer, prints the record as JSON
  topic-consume URL BROKERS TOPIC N
                   -> reads N messages from TOPIC with a Consumer and AvroDeserializer, prints
                      one JSON record per line
  topic-produce URL BROKERS TOPIC SCHEMA_FILE
                   -> produces each JSON line of stdin to TOPIC with AvroSerializer, keyed by
                      login.uuid, and flushes
"""
import json
import sys

from confluent_kafka import Consumer, Producer
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
    elif mode == "topic-consume":
        brokers, topic, wanted = sys.argv[3], sys.argv[4], int(sys.argv[5])
        deserializer = AvroDeserializer(client)
        consumer = Consumer({"bootstrap.servers": brokers, "group.id": "python-interop",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([topic])
        seen = 0
        while seen < wanted:
            message = consumer.poll(30)
            if message is None:
                raise SystemExit(f"only {seen} of {wanted} messages arrived")
            if message.error():
                raise SystemExit(str(message.error()))
            ctx = SerializationContext(topic, MessageField.VALUE)
            print(json.dumps(deserializer(message.value(), ctx)))
            seen += 1
        consumer.close()
    elif mode == "topic-produce":
        brokers, topic = sys.argv[3], sys.argv[4]
        schema = open(sys.argv[5]).read()
        serializer = AvroSerializer(client, schema)
        producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True})
        ctx = SerializationContext(topic, MessageField.VALUE)
        for line in sys.stdin:
            user = json.loads(line)
            producer.produce(topic, key=user["login"]["uuid"], value=serializer(user, ctx))
        if producer.flush(30) != 0:
            raise SystemExit("not every message was delivered")


if __name__ == "__main__":
    main()
