"""kafka-python against a Tributary broker: admin, producer, group consumer, offsets.

Usage: kafka_python_check.py BOOTSTRAP. Prints one PASS/FAIL line per step and exits
non-zero if any step failed.
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

BOOTSTRAP = sys.argv[1]
TOPIC = "kafka-python"
RECORDS = 100
failures = 0


def step(name, check):
    global failures
    try:
        check()
        print(f"  PASS  {name}", flush=True)
    except Exception as error:  # noqa: BLE001 - every failure is reported the same way
        failures += 1
        print(f"  FAIL  {name}: {error!r}", flush=True)


admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=30000)


def create_topic():
    admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
    assert TOPIC in admin.list_topics()


def produce():
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", compression_type="gzip")
    futures = [producer.send(TOPIC, key=str(i).encode(), value=f"value-{i}".encode()) for i in range(RECORDS)]
    producer.flush()
    assert all(f.get(timeout=30).offset >= 0 for f in futures)
    producer.close()


def consumer():
    return KafkaConsumer(
        TOPIC,
        bootstrap_servers=BOOTSTRAP,
        group_id="kafka-python-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=15000,
    )


def consume_and_commit():
    c = consumer()
    seen = set()
    for message in c:
        seen.add(message.value)
        if len(seen) == RECORDS:
            break
    assert len(seen) == RECORDS, f"{len(seen)} records"
    c.commit()
    c.close()


def resume():
    c = consumer()
    c.config["consumer_timeout_ms"] = 5000
    leftover = list(c)
    c.close()
    assert not leftover, f"{len(leftover)} records again after the commit"


def offsets_for_times():
    c = KafkaConsumer(bootstrap_servers=BOOTSTRAP)
    partitions = [TopicPartition(TOPIC, p) for p in range(3)]
    found = c.offsets_for_times({tp: 0 for tp in partitions})
    assert all(found[tp] is not None and found[tp].offset == 0 for tp in partitions), found
    ends = c.end_offsets(partitions)
    assert sum(ends.values()) == RECORDS, ends
    c.close()


def describe_configs():
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
    text = repr(result)
    assert "retention.ms" in text, text[:300]


def groups():
    listed = [g[0] for g in admin.list_consumer_groups()]
    assert "kafka-python-group" in listed, listed
    committed = admin.list_consumer_group_offsets("kafka-python-group")
    assert sum(o.offset for o in committed.values()) == RECORDS, committed


def delete_topic():
    admin.delete_topics([TOPIC])
    deadline = time.time() + 30
    while TOPIC in admin.list_topics():
        assert time.time() < deadline, "topic still listed"
        time.sleep(0.2)


step("create a topic (admin)", create_topic)
step("produce 100 records, acks=all, gzip", produce)
step("consume them in a group and commit", consume_and_commit)
step("the group resumes after its commit", resume)
step("offsets for times and end offsets", offsets_for_times)
step("describe topic configs", describe_configs)
step("list groups and their offsets", groups)
step("delete the topic", delete_topic)
admin.close()
print(f"RESULT passed={8 - failures} failed={failures}")
sys.exit(1 if failures else 0)
