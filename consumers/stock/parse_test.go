package stock

import (
	"strings"
	"testing"
)

func TestParseOrderPaid(t *testing.T) {
	for _, tc := range []struct {
		payload string
		err     string // "" = valid
	}{
		{`{"orderId":1,"userId":2,"items":[{"productDetailId":3,"quantity":1},{"productDetailId":4,"quantity":2}]}`, ""},
		{`{"orderId":1,"userId":2,"items":[{"productDetailId":3,"quantity":1}],"unknown":true}`, ""},
		{`{"orderId":0,"userId":2,"items":[{"productDetailId":3,"quantity":1}]}`, "lacks orderId, userId or items"},
		{`{"orderId":1,"userId":0,"items":[{"productDetailId":3,"quantity":1}]}`, "lacks orderId, userId or items"},
		{`{"orderId":1,"userId":2,"items":[]}`, "lacks orderId, userId or items"},
		{`{"orderId":1,"userId":2}`, "lacks orderId, userId or items"},
		{`{"orderId":1,"userId":2,"items":[{"productDetailId":0,"quantity":1}]}`, "item"},
		{`{"orderId":1,"userId":2,"items":[{"productDetailId":3,"quantity":0}]}`, "item"},
		{`{"orderId":1,"userId":2,"items":[{"productDetailId":3,"quantity":1},{"productDetailId":3,"quantity":1}]}`, "item"},
		{`{"orderId":"1","userId":2,"items":[{"productDetailId":3,"quantity":1}]}`, "payload is not valid"},
		{`[]`, "payload is not valid"},
	} {
		e, err := parseOrderPaid([]byte(tc.payload))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.payload, err, tc.err)
		}
		if err == nil && (e.OrderID != 1 || e.UserID != 2 || len(e.Items) == 0) {
			t.Errorf("%s: parsed %+v", tc.payload, e)
		}
	}
}
