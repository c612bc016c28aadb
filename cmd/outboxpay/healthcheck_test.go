package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/outboxpay/outboxpay/internal/basicauth"
)

func TestHealthcheck(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	creds := basicauth.New(basicauth.User{Name: "admin", Password: "hc-s3cret"})
	authed := httptest.NewServer(creds.Handler("test", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer authed.Close()
	signIn := []string{"CONNECT_REST_USERNAME=admin", "CONNECT_REST_PASSWORD=hc-s3cret"}
	for _, tc := range []struct {
		url  string
		env  []string
		code int
	}{
		{ok.URL, nil, 0},
		{down.URL, nil, 1},
		{"http://" + freeAddr(t), nil, 1},
		{"::not a url", nil, 1},
		{authed.URL, nil, 1},
		{authed.URL, signIn, 0},
		{authed.URL, []string{"CONNECT_REST_USERNAME=admin", "CONNECT_REST_PASSWORD=wrong"}, 1},
	} {
		if code, _, stderr := run(t, tc.env, "healthcheck", tc.url); code != tc.code {
			t.Errorf("healthcheck %s: exit %d, want %d\n%s", tc.url, code, tc.code, stderr)
		}
	}
}
