package main

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestSummaryMax(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       float64
	}{
		{"absent", "", math.NaN()},
		{"one summary", `# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 1e-05
go_gc_duration_seconds{quantile="0.5"} 5e-05
go_gc_duration_seconds{quantile="1"} 0.003
go_gc_duration_seconds_sum 0.01
go_gc_duration_seconds_count 40
`, 0.003},
		{"the largest over label sets", `# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{a="x",quantile="1"} 0.002
go_gc_duration_seconds_sum{a="x"} 0.01
go_gc_duration_seconds_count{a="x"} 4
go_gc_duration_seconds{a="y",quantile="1"} 0.02
go_gc_duration_seconds_sum{a="y"} 0.05
go_gc_duration_seconds_count{a="y"} 5
`, 0.02},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parser := expfmt.NewTextParser(model.UTF8Validation)
			mfs, err := parser.TextToMetricFamilies(strings.NewReader(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			got := families(mfs).summaryMax(metricGCDuration)
			if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
				t.Errorf("summaryMax = %v, want %v", got, tc.want)
			}
		})
	}
}
