package main

import (
	"strings"
	"testing"
	"time"
)

// The latency consumer reads the insert time outboxScript puts in the
// payload, as jsonb prints it, and counts no record without one.
func TestWrittenAt(t *testing.T) {
	cases := []struct {
		name    string
		payload string
		want    time.Time
		ok      bool
	}{
		{"jsonb text", `{"items": [{"quantity": 2, "productDetailId": 1}], "userId": 3, "orderId": 9, "benchWrittenAtUs": 1796025600123456}`,
			time.Date(2026, 11, 30, 8, 0, 0, 123456000, time.UTC), true},
		{"no field", `{"orderId": 9}`, time.Time{}, false},
		{"not a number", `{"benchWrittenAtUs": "soon"}`, time.Time{}, false},
		{"not JSON", `orderId=9`, time.Time{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, ok := writtenAt([]byte(c.payload))
			if ok != c.ok || !got.Equal(c.want) {
				t.Fatalf("writtenAt = %v, %v; want %v, %v", got, ok, c.want, c.ok)
			}
		})
	}
	if s := outboxScript(); !strings.Contains(s, `'`+writtenAtField+`', CAST(extract(epoch FROM clock_timestamp()) * 1000000 AS bigint)`) {
		t.Fatalf("the script does not write %s:\n%s", writtenAtField, s)
	}
}
