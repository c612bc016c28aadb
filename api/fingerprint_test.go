package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// The fingerprint depends on the method, the route, the path ids and the
// decoded body, never on how the body was spelled.
func TestRequestFingerprint(t *testing.T) {
	one, seven := int64(1), int64(7)
	fp := func(method, route, orderID string, body any) string {
		t.Helper()
		c := echo.New().NewContext(httptest.NewRequest(method, "/", nil), httptest.NewRecorder())
		c.SetPath(route)
		c.SetParamNames("orderId")
		c.SetParamValues(orderID)
		f, err := requestFingerprint(c, body)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	const route = "/orders/:orderId/payment"
	base := fp(http.MethodPost, route, "5", paymentRequest{UserID: &one})
	if !strings.HasPrefix(base, "POST "+route+" sha256:") || len(base) > 512 {
		t.Fatalf("fingerprint %q", base)
	}
	for _, tc := range []struct {
		name string
		got  string
		same bool
	}{
		{"same request", fp(http.MethodPost, route, "5", paymentRequest{UserID: &one}), true},
		{"an equal body (another pointer)", fp(http.MethodPost, route, "5", paymentRequest{UserID: &[]int64{1}[0]}), true},
		{"another body", fp(http.MethodPost, route, "5", paymentRequest{UserID: &seven}), false},
		{"no body field", fp(http.MethodPost, route, "5", paymentRequest{}), false},
		{"another path id", fp(http.MethodPost, route, "6", paymentRequest{UserID: &one}), false},
		{"another route", fp(http.MethodPost, "/orders/:orderId/refund", "5", paymentRequest{UserID: &one}), false},
		{"another method", fp(http.MethodPut, route, "5", paymentRequest{UserID: &one}), false},
	} {
		if (tc.got == base) != tc.same {
			t.Errorf("%s: fingerprint %q, base %q, want same=%v", tc.name, tc.got, base, tc.same)
		}
	}
}
