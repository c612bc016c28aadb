package platform

import (
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/event"
)

func TestCheckPayment(t *testing.T) {
	for _, tc := range []struct {
		payload string
		err     string // "" = valid
	}{
		{`{"paymentId":1,"orderId":2,"userId":3,"amount":4}`, ""},
		{`{"paymentId":0,"orderId":0,"userId":0,"amount":0,"unknown":true}`, ""},
		{`{"paymentId":1,"orderId":2,"userId":3}`, "lacks paymentId, orderId, userId or amount"},
		{`{}`, "lacks"},
		{`{"paymentId":"1","orderId":2,"userId":3,"amount":4}`, "payload is not valid"},
		{`not json`, "payload is not valid"},
	} {
		err := checkPayment(event.TypePaymentCompleted, []byte(tc.payload))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.payload, err, tc.err)
		}
	}
}
