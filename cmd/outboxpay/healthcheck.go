package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// runHealthcheck exits 0 when url answers 2xx within a few seconds: the
// container health check of images that have no shell or curl. A non-empty
// user is sent as HTTP Basic credentials (the Kafka Connect REST API's).
func runHealthcheck(ctx context.Context, url, user, password string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health check %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health check %s: %s", url, resp.Status)
	}
	return nil
}
