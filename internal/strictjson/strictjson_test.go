package strictjson_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/strictjson"
)

type item struct {
	ID  *int64 `json:"productDetailId"`
	Qty *int64 `json:"quantity"`
}

type order struct {
	UserID *int64            `json:"userId"`
	Items  []item            `json:"items"`
	Tags   map[string]string `json:"tags,omitempty"`
	Extra  any               `json:"extra"`
	Skip   int               `json:"-"`
	Plain  int
}

func TestCheck(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		reason strictjson.Reason
		path   string
		want   string
	}{
		{"exact names", `{"userId": 1, "items": [{"productDetailId": 2, "quantity": 3}], "Plain": 1}`, 0, "", ""},
		{"invalid JSON is left to the decoder", `{"userId": `, 0, "", ""},
		{"not an object", `[1, 2]`, 0, "", ""},
		{"same name in sibling objects", `{"items": [{"quantity": 1}, {"quantity": 2}]}`, 0, "", ""},
		{"upper case", `{"USERID": 1}`, strictjson.Unknown, "USERID", "userId"},
		{"go field name", `{"UserID": 1}`, strictjson.Unknown, "UserID", "userId"},
		{"tag name of the Go name", `{"plain": 1}`, strictjson.Unknown, "plain", "Plain"},
		{"dash tag", `{"Skip": 1}`, strictjson.Unknown, "Skip", ""},
		{"unknown", `{"currency": "KRW"}`, strictjson.Unknown, "currency", ""},
		{"nested case", `{"items": [{"quantity": 1}, {"Quantity": 1}]}`, strictjson.Unknown, "items[1].Quantity", "quantity"},
		{"duplicate", `{"userId": -5, "userId": 3}`, strictjson.Duplicate, "userId", ""},
		{"nested duplicate", `{"items": [{"quantity": 1, "quantity": 2}]}`, strictjson.Duplicate, "items[0].quantity", ""},
		{"duplicate map key", `{"tags": {"a": "1", "a": "2"}}`, strictjson.Duplicate, "tags.a", ""},
		{"duplicate inside any", `{"extra": [{"x": {"y": 1, "y": 2}}]}`, strictjson.Duplicate, "extra[0].x.y", ""},
		{"too deep is left to the decoder", `{"extra": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, 0, "", ""},
		{"map keys are free-form", `{"tags": {"A": "1", "a": "2"}}`, 0, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := strictjson.Check([]byte(c.body), &order{})
			if c.reason == 0 {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var me *strictjson.MemberError
			if !errors.As(err, &me) {
				t.Fatalf("Check = %v, want a *MemberError", err)
			}
			if me.Reason != c.reason || me.Path != c.path || me.Want != c.want {
				t.Fatalf("Check = %+v, want reason %d path %q want %q", me, c.reason, c.path, c.want)
			}
		})
	}
}
