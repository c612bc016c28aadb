package logtest_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/outboxpay/outboxpay/internal/kit/logtest"
)

// Lines logged from many goroutines all arrive, whole, while the test reads.
func TestConcurrentLogging(t *testing.T) {
	logger, logs := logtest.New()
	const writers, lines = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				logger.Debug("line", "writer", w, "i", i, "err", errors.New("boom"))
				_ = logs.String()
			}
		}()
	}
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(logs.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("%d lines, want %d", len(got), writers*lines)
	}
	for _, want := range []string{"level=DEBUG", "msg=line", "writer=3", "i=49", "err=boom"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}
	var b logtest.Buffer
	fmt.Fprint(&b, "zero value")
	if b.String() != "zero value" {
		t.Errorf("zero Buffer holds %q", b.String())
	}
}
