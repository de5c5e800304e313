import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

import org.HdrHistogram.Histogram;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Many independent Java producers writing keyed records as fast as the brokers take them:
 * each producer holds its own connections and metadata, and random keys spread every
 * producer's records over all partitions, so a wide topic sees many small batches (the case
 * that stresses metadata, per-partition state and request fan-out, not bulk bandwidth).
 *
 * <p>Usage: java -cp "KAFKA/libs/*" KeyedLoad.java BOOTSTRAP TOPIC PRODUCERS SECONDS VALUE_BYTES
 *
 * <p>Prints one line: {@code keyed producers=.. records=.. errors=.. rec_s=.. mb_s=.. p50_ms=..
 * p99_ms=.. p999_ms=..} (latency from send to acknowledgement, acks=all).
 */
public final class KeyedLoad {
    private static final int KEYS = 100_000;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int producers = Integer.parseInt(args[2]);
        long seconds = Long.parseLong(args[3]);
        int valueBytes = Integer.parseInt(args[4]);

        AtomicLong acked = new AtomicLong();
        AtomicLong errors = new AtomicLong();
        List<Histogram> histograms = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        long deadline = System.nanoTime() + seconds * 1_000_000_000L;
        long start = System.nanoTime();
        for (int i = 0; i < producers; i++) {
            // Written only from this producer's I/O thread (callbacks), read after close().
            Histogram histogram = new Histogram(60_000_000L, 3);
            histograms.add(histogram);
            int id = i;
            Thread thread = new Thread(() -> run(bootstrap, topic, id, deadline, valueBytes,
                    histogram, acked, errors));
            thread.start();
            threads.add(thread);
        }
        for (Thread thread : threads) {
            thread.join();
        }
        double elapsed = (System.nanoTime() - start) / 1e9;
        Histogram all = new Histogram(60_000_000L, 3);
        histograms.forEach(all::add);
        long records = acked.get();
        System.out.printf("keyed producers=%d records=%d errors=%d rec_s=%.0f mb_s=%.2f "
                        + "p50_ms=%.1f p99_ms=%.1f p999_ms=%.1f%n",
                producers, records, errors.get(), records / elapsed,
                records * (double) valueBytes / elapsed / (1024 * 1024),
                all.getValueAtPercentile(50) / 1000.0, all.getValueAtPercentile(99) / 1000.0,
                all.getValueAtPercentile(99.9) / 1000.0);
    }

    private static void run(String bootstrap, String topic, int id, long deadline, int valueBytes,
            Histogram histogram, AtomicLong acked, AtomicLong errors) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", "keyed-load-" + id);
        p.put("acks", "all");
        // Fifty producers share one JVM: a small buffer each keeps memory bounded.
        p.put("buffer.memory", Integer.toString(4 * 1024 * 1024));
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        SplittableRandom random = new SplittableRandom(id);
        byte[] value = new byte[valueBytes];
        for (int i = 0; i < value.length; i++) {
            value[i] = (byte) ('A' + random.nextInt(26));
        }
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            while (System.nanoTime() < deadline) {
                byte[] key = Integer.toString(random.nextInt(KEYS)).getBytes();
                long sent = System.nanoTime();
                producer.send(new ProducerRecord<>(topic, key, value), (metadata, exception) -> {
                    if (exception != null) {
                        errors.incrementAndGet();
                    } else {
                        acked.incrementAndGet();
                        histogram.recordValue(Math.min((System.nanoTime() - sent) / 1000, 60_000_000L));
                    }
                });
            }
        }
    }
}
