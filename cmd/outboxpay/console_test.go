package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/outboxpay/outboxpay/api/operator"
	"github.com/outboxpay/outboxpay/internal/kit/browser"
	"github.com/outboxpay/outboxpay/internal/kit/eventually"
	"github.com/outboxpay/outboxpay/internal/ops"
	"github.com/outboxpay/outboxpay/internal/outbox"
)

// consoleWait bounds each wait of the browser tests: generous, for a loaded
// CI machine; an idle one takes seconds.
const consoleWait = time.Minute

// TestConsoleInBrowser drives the console in headless chromium against
// `outboxpay dev` as its own process, as an operator would: log in through
// the Basic challenge (a wrong password does not get in), watch a paid
// order's events become COMPLETE, see a row the platform refused become
// FAILED with its reason, retry it once the platform is healed and see it
// COMPLETE, re-drive one of its dead-lettered records, pause and resume the
// connector, and find every action in the audit log, with its actor and
// reason, on the page and through the operator API. It writes screenshots
// of the summary and of the retried event to $CONSOLE_SCREENSHOTS (make
// screenshots: docs/images), else to a temporary folder.
func TestConsoleInBrowser(t *testing.T) {
	start := time.Now()
	// A fast reconciler that gives up quickly: a PUBLISHED row not COMPLETE
	// for 2 s is republished, and FAILED after 2 attempts; the platform
	// group dead-letters a refused event at its first refusal.
	sys, err := launchDev(binary(t), t.TempDir(), "RECONCILE_INTERVAL=1s", "RECONCILE_PUBLISHED_STUCK_AFTER=2s",
		"RECONCILE_REPUBLISH_AFTER=2s", "RECONCILE_STUCK_AFTER=2s", "RECONCILE_MAX_ATTEMPTS=2", "PLATFORM_MAX_TRIES=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sys.stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("dev serving after %v", time.Since(start).Round(time.Millisecond))
	if sys.Console == "" {
		t.Fatalf("dev's banner names no console:\n%s", sys.Banner)
	}
	shots := os.Getenv("CONSOLE_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if abs, err := filepath.Abs(shots); err == nil {
		shots = abs
	}
	s := stack{API: sys.API, Connect: sys.Connect, Platform: sys.Platform, User: sys.User, Password: sys.Password,
		dev: sys, token: func(t *testing.T, user int64) string { return sys.token(t, user) }}
	client := operator.NewClient(sys.Console, sys.User, sys.Password, nil)
	page := sys.Console + "/console"
	ctx := context.Background()

	t.Run("a wrong password does not get in", func(t *testing.T) {
		for _, cred := range []struct{ user, password string }{{sys.User, "not-" + sys.Password}, {"", ""}} {
			b := browser.Start(t, browser.Config{Username: cred.user, Password: cred.password, Timeout: consoleWait})
			b.Open(page)
			b.WaitText("body", "operator credentials (HTTP Basic) are missing or wrong")
			if n := b.Count("#nav"); n != 0 {
				t.Errorf("user %q with a wrong password sees the console", cred.user)
			}
		}
	})

	b := browser.Start(t, browser.Config{Username: sys.User, Password: sys.Password, Timeout: consoleWait})
	t.Cleanup(func() {
		if t.Failed() {
			dir, err := os.MkdirTemp("", "console-failure-")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "page.png")
			b.Screenshot(path)
			t.Logf("the page when the test failed: %s", path)
		}
	})
	step := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	// traffic pays n more orders of user 3, for the summary's charts, and
	// waits until they are settled.
	traffic := func(n int) {
		t.Helper()
		d := s.detailWithStock(t, int64(n), false)
		s.charge(t, 3, int64(n)*d.Price)
		orders := make([]int64, n)
		for i := range orders {
			orders[i] = s.order(t, 3, d.ID, 1)
			s.pay(t, orders[i], 3)
		}
		for _, o := range orders {
			s.waitSettled(t, 3, o)
		}
	}

	// a. Log in: the page loads and its live summary answers.
	b.Open(page + "#/summary")
	b.WaitText("#live", "live")
	step("logged in")
	traffic(3)

	// b. A paid order's events become COMPLETE on the page.
	detail := s.detailWithStock(t, 2, false)
	s.charge(t, 2, 2*detail.Price)
	paid := s.order(t, 2, detail.ID, 1)
	s.pay(t, paid, 2)
	b.Open(fmt.Sprintf("%s#/events?order=%d", page, paid))
	b.WaitFor(fmt.Sprintf("order %d's events all COMPLETE", paid), `(() => {
		const rows = [...document.querySelectorAll('#results tbody tr[data-status]')];
		return rows.length >= 2 && rows.every((r) => r.dataset.status === 'COMPLETE');
	})()`)
	step("order's events COMPLETE")
	traffic(3)

	// c. The platform refuses every event: the order's PaymentCompleted is
	// dead-lettered, republished, and FAILED.
	s.request(t, s.Platform, "PUT", "/faults", map[string]any{"failureRate": 1}, http.StatusOK, nil)
	refused := s.order(t, 2, detail.ID, 1)
	s.pay(t, refused, 2)
	b.Open(fmt.Sprintf("%s#/events?order=%d", page, refused))
	sel := `#results tbody tr[data-status] td:nth-child(2)`
	b.WaitFor("the refused order's rows listed", fmt.Sprintf(`[...document.querySelectorAll(%q)].some((td) => td.innerText === 'PaymentCompleted')`, sel))
	id := eventOf(t, client, refused, "PaymentCompleted")
	row := fmt.Sprintf(`#results tbody tr[data-event-id="%s"]`, id)
	b.WaitFor("PaymentCompleted FAILED on the search page", fmt.Sprintf(`document.querySelector('%s')?.dataset.status === 'FAILED'`, row))
	step("PaymentCompleted FAILED")
	b.Click(row + " a")
	b.WaitText("#event-status", "FAILED")
	b.WaitText("#event-error", "FAILED by the reconciler: not COMPLETE after 2 attempts")
	// Its dead-lettered records name the platform's refusal.
	b.WaitFor("its dead-lettered records", `document.querySelectorAll('#event-dlq tbody tr[data-offset]').length > 0`)
	if reason, _ := b.Text("#event-dlq tbody tr[data-offset] .reason"); !strings.Contains(reason, "data platform: 503") {
		t.Errorf("a dead-lettered record of the FAILED row shows the reason %q, want the platform's 503", reason)
	}
	b.WaitText("#timeline", "Failed")

	// Heal the platform; retry from the page, with a reason.
	s.request(t, s.Platform, "PUT", "/faults", map[string]any{"failureRate": 0}, http.StatusOK, nil)
	confirm(b, "#btn-retry", "platform healed, sending it again")
	b.WaitText("#toast", "Retry: done")
	b.WaitText("#event-status", "COMPLETE")
	b.WaitText("#timeline", "Retry")
	step("retried: COMPLETE")
	b.WaitText("#event-audit tbody", "platform healed, sending it again")
	traffic(3)

	// d. Re-drive one of its dead-lettered records from the event's page.
	rec := `#event-dlq tbody tr[data-offset]`
	b.WaitVisible(rec + " button.redrive:not([disabled])")
	key, err := browser.Eval[string](b, fmt.Sprintf(`(() => { const r = document.querySelector('%s:has(button.redrive:not([disabled]))'); return r.dataset.topic + '/' + r.dataset.partition + '/' + r.dataset.offset })()`, rec))
	if err != nil {
		t.Fatal(err)
	}
	topic, part, off := splitRecord(t, key)
	target := fmt.Sprintf(`#event-dlq tbody tr[data-topic="%s"][data-partition="%s"][data-offset="%s"]`, topic, part, off)
	confirm(b, target+" button.redrive", "replaying one dead letter after the fix")
	b.WaitText("#toast", "Re-drive: done")
	b.WaitFor("the record marked re-driven", fmt.Sprintf(`(() => { const r = document.querySelector('%s'); return r?.classList.contains('done') && r.querySelector('button.redrive').disabled })()`, target))
	step("re-driven")
	b.WaitText("#timeline", "Redriven")
	dismissToast(t, b)
	b.Screenshot(filepath.Join(shots, "console-event.png"))

	// e. Pause and resume the connector.
	b.Open(page + "#/connector")
	b.WaitFor("connector RUNNING", `document.querySelector('#connector-state').dataset.state === 'RUNNING'`)
	confirm(b, "#btn-pause", "pausing for maintenance")
	b.WaitFor("connector PAUSED", `document.querySelector('#connector-state').dataset.state === 'PAUSED'`)
	confirm(b, "#btn-resume", "maintenance over")
	b.WaitFor("connector RUNNING again", `document.querySelector('#connector-state').dataset.state === 'RUNNING'`)
	step("connector paused and resumed")
	traffic(3)

	// f. The audit log lists every action, with its actor and reason, on the
	// page and through the operator API.
	want := map[string]string{
		ops.ActionRetry:           "platform healed, sending it again",
		ops.ActionRedrive:         "replaying one dead letter after the fix",
		ops.ActionConnectorPause:  "pausing for maintenance",
		ops.ActionConnectorResume: "maintenance over",
	}
	b.Open(page + "#/audit")
	for action, reason := range want {
		b.WaitFor("audit row "+action, fmt.Sprintf(`[...document.querySelectorAll('#audit tbody tr[data-action=%q]')].some((r) => r.innerText.includes(%q) && r.innerText.includes(%q))`,
			action, reason, sys.User))
	}
	entries, err := client.Audit(ctx, ops.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for action, reason := range want {
		if !slices.ContainsFunc(entries, func(e ops.AuditEntry) bool {
			return e.Action == action && e.Reason == reason && e.Actor == sys.User && e.Changed
		}) {
			t.Errorf("GET /ops/audit has no %s by %s (%q): %+v", action, sys.User, reason, entries)
		}
	}
	if len(entries) != len(want) {
		t.Errorf("GET /ops/audit: %d entries, want %d: %+v", len(entries), len(want), entries)
	}
	life, err := client.Life(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if life.Event.Status != outbox.StatusComplete {
		t.Errorf("the retried row is %s, want COMPLETE", life.Event.Status)
	}

	// g. The summary with the activity on its charts.
	b.Open(page + "#/summary")
	b.WaitText("#live", "live")
	b.WaitFor("the summary's charts drawn", `document.querySelectorAll('#view-summary .chart canvas').length === 4`)
	b.WaitFor("every row COMPLETE", `(() => {
		const n = (st) => Number(document.querySelector('#rows [data-status="' + st + '"] .status-count').innerText.replace(/,/g, ''));
		return n('COMPLETE') > 0 && n('INIT') + n('PUBLISHED') + n('FAILED') === 0;
	})()`)
	b.WaitFor("the replication slot active again", `document.querySelector('#slots .dot.on') !== null`)
	dismissToast(t, b)
	b.Screenshot(filepath.Join(shots, "console-summary.png"))
	step("screenshots in " + shots)
}

// confirm clicks button, gives the confirmation dialog reason, and confirms.
func confirm(b *browser.Browser, button, reason string) {
	b.Click(button)
	b.WaitVisible("#confirm-reason")
	b.Fill("#confirm-reason", reason)
	b.Click("#confirm-ok")
	b.WaitFor("the dialog closed", `!document.querySelector('#confirm').open`)
}

// dismissToast closes the page's outcome message, if it shows one.
func dismissToast(t *testing.T, b *browser.Browser) {
	t.Helper()
	if _, err := browser.Eval[bool](b, `(() => { const t = document.querySelector('#toast'); if (!t.hidden) t.querySelector('.toast-close').click(); return true })()`); err != nil {
		t.Fatalf("close the page's message: %v", err)
	}
}

// eventOf is the id of order's event of type typ, through the operator API.
func eventOf(t *testing.T, c *operator.Client, order int64, typ string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	eventually.True(t, consoleWait, fmt.Sprintf("order %d's %s in the outbox", order, typ), func() (bool, error) {
		events, err := c.Search(context.Background(), ops.Query{OrderID: order, Type: typ})
		if err != nil || len(events) == 0 {
			return false, err
		}
		id = events[0].ID
		return true, nil
	})
	return id
}

// splitRecord splits topic/partition/offset.
func splitRecord(t *testing.T, key string) (string, string, string) {
	t.Helper()
	i, j := strings.Index(key, "/"), strings.LastIndex(key, "/")
	if i < 0 || i == j {
		t.Fatalf("record %q", key)
	}
	return key[:i], key[i+1 : j], key[j+1:]
}

// TestConsoleNeedsCredentialsOnDev: dev's console and operator API answer
// 401 with a Basic challenge without credentials or with wrong ones, and
// the actions refused change nothing: the row, the audit log and the
// connector are as before.
func TestConsoleNeedsCredentialsOnDev(t *testing.T) {
	sys := sharedDev(t)
	s := stack{API: sys.API, Platform: sys.Platform, User: sys.User, Password: sys.Password, dev: sys,
		token: func(t *testing.T, user int64) string { return sys.token(t, user) }}
	client := operator.NewClient(sys.Console, sys.User, sys.Password, nil)
	ctx := context.Background()

	detail := s.detailWithStock(t, 1, false)
	s.charge(t, 2, detail.Price)
	order := s.order(t, 2, detail.ID, 1)
	s.pay(t, order, 2)
	s.waitSettled(t, 2, order)
	id := eventOf(t, client, order, "PaymentCompleted")
	eventually.True(t, consoleWait, "connector RUNNING", func() (bool, error) {
		sum, err := client.Summary(ctx, 0)
		return err == nil && sum.Connector.State == "RUNNING", fmt.Errorf("connector %q, %v", sum.Connector.State, err)
	})
	before, err := client.Audit(ctx, ops.AuditQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}

	dlq := ""
	if sum, err := client.Summary(ctx, 0); err == nil && len(sum.DLQ) > 0 {
		dlq = sum.DLQ[0].Topic
	}
	requests := []struct{ method, path, body string }{
		{"GET", "/console", ""},
		{"GET", "/console/app.js", ""},
		{"GET", "/ops/summary", ""},
		{"POST", "/ops/events/" + id.String() + "/retry", `{"reason":"no credentials"}`},
		{"POST", "/ops/events/" + id.String() + "/discard", `{"reason":"no credentials"}`},
		{"POST", "/ops/connector/pause", `{"reason":"no credentials"}`},
		{"POST", "/ops/dlq/redrive", fmt.Sprintf(`{"topic":%q,"reason":"no credentials"}`, dlq)},
	}
	for _, cred := range []struct{ name, user, password string }{
		{"no credentials", "", ""},
		{"a wrong password", sys.User, "not-" + sys.Password},
		{"an unknown user", "mallory", sys.Password},
	} {
		for _, r := range requests {
			req, err := http.NewRequest(r.method, sys.Console+r.path, strings.NewReader(r.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if cred.user != "" {
				req.SetBasicAuth(cred.user, cred.password)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Basic realm="outboxpay operator"`) {
				t.Errorf("%s %s with %s: %s, WWW-Authenticate %q", r.method, r.path, cred.name, resp.Status, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}

	life, err := client.Life(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if life.Event.Status != outbox.StatusComplete || len(life.Audit) != 0 {
		t.Errorf("the row after refused actions: %s, audit %+v", life.Event.Status, life.Audit)
	}
	after, err := client.Audit(ctx, ops.AuditQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("the audit log had %d rows, has %d after refused actions", len(before), len(after))
	}
	sum, err := client.Summary(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Connector.State != "RUNNING" {
		t.Errorf("connector %s after a refused pause, want RUNNING", sum.Connector.State)
	}
}

// TestOpsAgainstDev: the built binary's `outboxpay ops summary` and `ops
// audit`, signed in with dev's credentials, print the operator API's JSON.
func TestOpsAgainstDev(t *testing.T) {
	sys := sharedDev(t)
	env := []string{"CONSOLE_URL=" + sys.Console, "CONSOLE_USERNAME=" + sys.User, "CONSOLE_PASSWORD=" + sys.Password}
	opsRun := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(binary(t), append([]string{"ops"}, args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("outboxpay ops %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}

	var sum ops.Summary
	if err := json.Unmarshal(opsRun("summary", "--window", "30s"), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Window.Seconds != 30 || sum.At.IsZero() || sum.Connector.Name != "outbox" || len(sum.Consumers) == 0 || sum.Outbox.Rows == nil {
		t.Errorf("ops summary: %+v", sum)
	}
	// Every group dev runs has a lag.
	for _, g := range []string{"stock", "data-platform", "outbox-tracker"} {
		if !slices.ContainsFunc(sum.Consumers, func(c ops.ConsumerGroup) bool { return c.Group == g }) {
			t.Errorf("ops summary: no group %s in %+v", g, sum.Consumers)
		}
	}

	var audit []ops.AuditEntry
	if err := json.Unmarshal(opsRun("audit", "--limit", "5"), &audit); err != nil {
		t.Fatal(err)
	}
	direct, err := operator.NewClient(sys.Console, sys.User, sys.Password, nil).Audit(context.Background(), ops.AuditQuery{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(audit, direct, func(a, b ops.AuditEntry) bool { return a.ID == b.ID && a.Action == b.Action && a.Actor == b.Actor }) {
		t.Errorf("ops audit: %+v, the API: %+v", audit, direct)
	}

	// Wrong credentials: exit status 1, and the API's refusal on stderr.
	cmd := exec.Command(binary(t), "ops", "summary")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CONSOLE_URL=" + sys.Console, "CONSOLE_USERNAME=" + sys.User, "CONSOLE_PASSWORD=wrong"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "401") {
		t.Errorf("ops summary with a wrong password: %v, stderr %q", err, stderr.String())
	}
}

// A console opened with its credentials in the URL
// (http://user:password@host/console) works: the page calls the operator
// API against its origin, since fetch refuses a URL that carries
// credentials, which every path relative to such a page would.
func TestConsoleOpenedWithCredentialsInURL(t *testing.T) {
	sys := sharedDev(t)
	u, err := neturl.Parse(sys.Console)
	if err != nil {
		t.Fatal(err)
	}
	u.User = neturl.UserPassword(sys.User, sys.Password)
	b := browser.Start(t, browser.Config{Timeout: consoleWait})
	b.Open(u.String() + "/console#/audit")
	b.WaitText("#live", "live")
}
