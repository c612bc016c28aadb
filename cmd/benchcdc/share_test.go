package main

import "testing"

func TestShare(t *testing.T) {
	for _, tc := range []struct {
		engine, reference float64
		want              string
	}{
		{0.080, 0.030, ms(0.050)},
		{0.030, 0.030, ms(0)},
		{0.080, 0.189, "n/a (the reader alone was slower)"},
	} {
		if got := share(tc.engine, tc.reference); got != tc.want {
			t.Errorf("share(%v, %v) = %q, want %q", tc.engine, tc.reference, got, tc.want)
		}
	}
}
