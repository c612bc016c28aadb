package basicauth_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/outboxpay/outboxpay/internal/basicauth"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []basicauth.User
		err        string // substring of the error; "" = none
	}{
		{name: "colon", file: "admin: s3cret\n", want: []basicauth.User{{"admin", "s3cret"}}},
		{name: "equals without spaces", file: "admin=s3cret", want: []basicauth.User{{"admin", "s3cret"}}},
		{name: "whitespace separator", file: "admin   s3cret\n", want: []basicauth.User{{"admin", "s3cret"}}},
		{name: "spaces around the separator", file: "  admin  =  s3cret  x\n", want: []basicauth.User{{"admin", "s3cret  x"}}},
		{name: "comments and blank lines",
			file: "# operators\n! also a comment\n\n   \nadmin: one\n  # indented comment\nops: two\n",
			want: []basicauth.User{{"admin", "one"}, {"ops", "two"}}},
		{name: "a later entry replaces an earlier one", file: "admin: one\nops: two\nadmin: three\n",
			want: []basicauth.User{{"admin", "three"}, {"ops", "two"}}},
		{name: "only the first separator splits", file: "admin: pa:ss=word\n", want: []basicauth.User{{"admin", "pa:ss=word"}}},
		{name: "escapes", file: `a\:b\ c: p\\w\u0041\td` + "\n", want: []basicauth.User{{"a:b c", "p\\wA\td"}}},
		{name: "continuation line", file: "admin: abc\\\n    def\n", want: []basicauth.User{{"admin", "abcdef"}}},
		{name: "an escaped backslash at the end is not a continuation", file: "admin: abc\\\\\nops: x\n",
			want: []basicauth.User{{"admin", `abc\`}, {"ops", "x"}}},
		{name: "CRLF line ends", file: "admin: s3cret\r\nops: x\r\n", want: []basicauth.User{{"admin", "s3cret"}, {"ops", "x"}}},
		{name: "empty file", file: "", err: basicauth.ErrNoCredentials.Error()},
		{name: "only comments", file: "# admin: s3cret\n", err: basicauth.ErrNoCredentials.Error()},
		{name: "no password", file: "admin: one\nops:\n", err: "line 2: an entry without a password"},
		{name: "no password, separator only", file: "ops\n", err: "line 1: an entry without a password"},
		{name: "no user", file: ": s3cret\n", err: "line 1: an entry without a user name"},
		{name: "malformed unicode escape", file: `admin: \u12` + "\n", err: `malformed \uXXXX`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := basicauth.Parse(strings.NewReader(tc.file))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse = %v, %v; want error %q", got, err, tc.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error %q holds the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	c := basicauth.New(basicauth.User{Name: "admin", Password: "one"}, basicauth.User{Name: "ops", Password: "two"})
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"admin", "one", true},
		{"ops", "two", true},
		{"admin", "two", false}, // another user's password
		{"ops", "one", false},
		{"admin", "", false},
		{"", "", false},
		{"nobody", "one", false},
		{"Admin", "one", false},
		{"admin", "one ", false},
	} {
		if got := c.Verify(tc.user, tc.pass); got != tc.ok {
			t.Errorf("Verify(%q, %q) = %v, want %v", tc.user, tc.pass, got, tc.ok)
		}
	}
	var zero basicauth.Credentials
	if zero.Verify("", "") {
		t.Error("the zero Credentials let somebody in")
	}
}

func TestWriteFileAndLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.properties")
	pass, err := basicauth.RandomPassword()
	if err != nil {
		t.Fatal(err)
	}
	if other, _ := basicauth.RandomPassword(); len(pass) != 32 || other == pass {
		t.Fatalf("RandomPassword = %q then %q", pass, other)
	}
	users := []basicauth.User{{Name: "admin", Password: pass}, {Name: "we:ird = name", Password: " \\odd#pass!"}}
	if err := basicauth.WriteFile(path, users...); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	got, err := basicauth.ParseFile(path)
	if err != nil || !reflect.DeepEqual(got, users) {
		t.Fatalf("ParseFile = %q, %v; want %q", got, err, users)
	}
	c, err := basicauth.Load(path)
	if err != nil || !c.Verify("admin", pass) || !c.Verify("we:ird = name", " \\odd#pass!") {
		t.Fatalf("Load: %v, or the written users do not verify", err)
	}
	if err := basicauth.WriteFile(path, users...); !errors.Is(err, os.ErrExist) {
		t.Errorf("WriteFile over an existing file = %v, want ErrExist", err)
	}
	if _, err := basicauth.Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v", err)
	}
}

func TestHandler(t *testing.T) {
	c := basicauth.New(basicauth.User{Name: "admin", Password: "s3cret"})
	served := 0
	h := c.Handler("test realm", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		_, _ = io.WriteString(w, "in")
	}))
	for _, tc := range []struct {
		name       string
		user, pass string
		set        bool
		header     string
		want       int
	}{
		{name: "right", user: "admin", pass: "s3cret", set: true, want: http.StatusOK},
		{name: "none", want: http.StatusUnauthorized},
		{name: "wrong password", user: "admin", pass: "guess", set: true, want: http.StatusUnauthorized},
		{name: "unknown user", user: "root", pass: "s3cret", set: true, want: http.StatusUnauthorized},
		{name: "bearer", header: "Bearer s3cret", want: http.StatusUnauthorized},
		{name: "not base64", header: "Basic !!!", want: http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := served
			req := httptest.NewRequest("PUT", "/faults", nil)
			if tc.set {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d", rec.Code, tc.want)
			}
			if tc.want == http.StatusUnauthorized {
				if got := rec.Header().Get("WWW-Authenticate"); got != `Basic realm="test realm"` {
					t.Errorf("WWW-Authenticate %q", got)
				}
				if served != before {
					t.Error("the handler ran for a refused request")
				}
			}
		})
	}
}
