package strictjson_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/strictjson"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		kind  strictjson.Kind
		field string
	}{
		{"valid", `{"userId": 1, "items": [{"productDetailId": 2, "quantity": 3}]}`, 0, ""},
		{"empty", ``, strictjson.Empty, ""},
		{"truncated", `{"userId": 1`, strictjson.Truncated, ""},
		{"syntax", `{"userId": 1,}`, strictjson.Syntax, ""},
		{"unknown member", `{"userID": 1}`, strictjson.Member, ""},
		{"duplicate member", `{"userId": 1, "userId": 2}`, strictjson.Member, ""},
		{"wrong type", `{"userId": "one"}`, strictjson.Type, "userId"},
		{"not an object", `[1]`, strictjson.Type, ""},
		{"trailing value", `{"userId": 1} {}`, strictjson.Trailing, ""},
		{"trailing garbage", `{"userId": 1} }`, strictjson.Trailing, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var dst order
			err := strictjson.Decode([]byte(c.body), &dst)
			if c.kind == 0 {
				if err != nil || dst.UserID == nil || *dst.UserID != 1 || len(dst.Items) != 1 {
					t.Fatalf("Decode: %v, %+v", err, dst)
				}
				return
			}
			var de *strictjson.DecodeError
			if !errors.As(err, &de) || de.Kind != c.kind || de.Field != c.field {
				t.Fatalf("Decode: %#v, want kind %d field %q", err, c.kind, c.field)
			}
			if c.kind == strictjson.Member && de.Member == nil {
				t.Fatal("a Member error without its member")
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	req := func(contentType, body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		return r
	}
	var dst order
	if err := strictjson.DecodeRequest(req("application/json; charset=utf-8", `{"userId": 1}`), &dst); err != nil || *dst.UserID != 1 {
		t.Fatalf("DecodeRequest: %v", err)
	}
	for _, ct := range []string{"", "text/plain", "application/jsonx", "application/json; x"} {
		if err := strictjson.DecodeRequest(req(ct, `{}`), &dst); !errors.Is(err, strictjson.ErrMediaType) {
			t.Errorf("Content-Type %q: %v, want ErrMediaType", ct, err)
		}
	}
	r := req("application/json", "")
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), readCloser{strings.NewReader(`{"userId": 1}`)}, 4)
	var re *strictjson.ReadError
	var mbe *http.MaxBytesError
	if err := strictjson.DecodeRequest(r, &dst); !errors.As(err, &re) || !errors.As(err, &mbe) {
		t.Errorf("oversized body: %v, want a ReadError wrapping the reader's", err)
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
