package kafkatest

import "testing"

func TestMurmur2KafkaVectors(t *testing.T) {
	t.Parallel()
	const unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs"
	for _, tc := range []struct {
		key  string
		want int32
	}{
		// Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
		// librdkafka, src/rdmurmur2.c, unittest_murmur2 (java_murmur2_results).
		{"kafka", fromBits(0xd067cf64)},
		{"giberish123456789", fromBits(0x8f552b0c)},
		{"1234", fromBits(0x9fc97b14)},
		{"234", fromBits(0xe7c009ca)},
		{"34", fromBits(0x873930da)},
		{"4", fromBits(0x5a4b5ca1)},
		{unaligned, fromBits(0x78424f1c)},
		{unaligned[1:], fromBits(0x4a62b377)},
		{unaligned[2:], fromBits(0xe0e4e09e)},
		{unaligned[3:], fromBits(0x62b8b43f)},
		{"", fromBits(0x106e08d9)},
	} {
		if got := Murmur2([]byte(tc.key)); got != tc.want {
			t.Errorf("murmur2(%q) = %d (%#08x), want %d (%#08x)", tc.key, got, uint32(got), tc.want, uint32(tc.want))
		}
	}
}

// fromBits reads a hash written as its 32 bits, as librdkafka's tests do.
func fromBits(u uint32) int32 { return int32(u) }

func TestMurmur2Partition(t *testing.T) {
	t.Parallel()
	// "kafka" hashes to 0xd067cf64, negative as an int32: toPositive
	// clears the sign bit, 0x5067cf64 = 1348980580, and 1348980580 % 3 = 1.
	if got := Partition([]byte("kafka"), 3); got != 1 {
		t.Errorf("murmur2Partition(kafka, 3) = %d, want 1", got)
	}
	for _, key := range []string{"21", "foobar", "abc", "kafka", "4"} {
		for _, n := range []int{1, 3, 7} {
			if p := Partition([]byte(key), n); p < 0 || int(p) >= n {
				t.Errorf("murmur2Partition(%q, %d) = %d, out of range", key, n, p)
			}
		}
	}
}
