package pgcluster

// Tests of the parent-death signal, which only Linux has.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperDirEnv, when set, makes the test binary a helper process that
// starts a cluster in the folder it names and then waits to be killed.
const helperDirEnv = "PGCLUSTER_TEST_HELPER_DIR"

// TestMain runs the tests, or, with helperDirEnv set, is the helper process
// of TestOwnerDeathStopsServer.
func TestMain(m *testing.M) {
	if dir := os.Getenv(helperDirEnv); dir != "" {
		runHelper(dir)
	}
	os.Exit(m.Run())
}

// runHelper starts a cluster in dir, says so, and waits to be killed.
func runHelper(dir string) {
	c, err := Start(context.Background(), Options{DataDir: dir})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready", c.Port())
	select {} // until killed
}

func TestOwnerDeathStopsServer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(testDir(t), "data")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper: %q, %v", line, err)
	}
	c := &Cluster{dataDir: dir}
	if pids, _ := serverPIDs(dir); len(pids) == 0 {
		t.Fatal("no server processes while the helper runs")
	}

	// SIGKILL gives the helper no chance to stop the server itself.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	gone := func() bool {
		pids, err := serverPIDs(dir)
		return err == nil && len(pids) == 0
	}
	if !waitFor(t.Context(), 30*time.Second, gone) {
		pids, _ := serverPIDs(dir)
		t.Fatalf("server processes %v outlived their owner", pids)
	}
	assertGone(t, c)

	// What was left behind starts again.
	startCluster(t, dir, false)
}

func TestServerOutlivesStartingThread(t *testing.T) {
	t.Parallel()
	// Start from a goroutine locked to its thread that exits without
	// unlocking: the runtime then ends that thread. The server must not
	// take it for the death of its parent.
	type result struct {
		c          *Cluster
		tid        int
		err        error
		mainThread bool
	}
	dir := filepath.Join(testDir(t), "data")
	var r result
	for {
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread()
			if syscall.Gettid() == os.Getpid() {
				// The runtime never ends the main thread; try another.
				runtime.UnlockOSThread()
				ch <- result{mainThread: true}
				return
			}
			c, err := Start(t.Context(), Options{DataDir: dir})
			ch <- result{c: c, tid: syscall.Gettid(), err: err}
		}()
		if r = <-ch; !r.mainThread {
			break
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	c := r.c
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	task := fmt.Sprintf("/proc/self/task/%d", r.tid)
	threadGone := func() bool {
		_, err := os.Stat(task)
		return errors.Is(err, os.ErrNotExist)
	}
	if !waitFor(t.Context(), 30*time.Second, threadGone) {
		t.Fatalf("thread %d did not end", r.tid)
	}

	// The kernel has sent any parent-death signal by now; give the server
	// a moment to act on it.
	c.mu.Lock()
	s := c.proc
	c.mu.Unlock()
	if waitClosed(s.done, 2*time.Second) {
		t.Fatalf("the server exited (%s) when the thread that started it ended", s.exitStatus())
	}
	if got := queryString(t, open(t, c, "postgres"), "SELECT 'alive'"); got != "alive" {
		t.Errorf("got %q", got)
	}
}

func TestParseShmAttachments(t *testing.T) {
	t.Parallel()
	const data = `       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
   9977889     622628   600                    56 27845 27859      3   101   104   101   104 1795604063 1795604063 1795604063                  4096                     0
         0     622629   600                    56 27900 27901      2   101   104   101   104 1795604063 1795604063 1795604063                  4096                     0
        -5     622630   600                    56 27950 27950      1   101   104   101   104 1795604063 1795604063 1795604063                  4096                     0
   9981668     262183   600                    56 20169 20174      0   101   104   101   104 1795603849 1795603849 1795603849                  4096                     0
`
	for _, tc := range []struct {
		name string
		key  int32
		id   int
		want int
	}{
		{name: "attached", key: 9977889, id: 622628, want: 3},
		{name: "detached", key: 9981668, id: 262183, want: 0},
		{name: "negative key", key: -5, id: 622630, want: 1},
		{name: "removed: key shown as 0", key: 9977890, id: 622629, want: 0},
		{name: "id reused under another key", key: 1234, id: 622628, want: 0},
		{name: "gone", key: 9977889, id: 1, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseShmAttachments([]byte(data), tc.key, tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("attachments of key %d, id %d = %d, want %d", tc.key, tc.id, got, tc.want)
			}
		})
	}

	if _, err := parseShmAttachments([]byte("no such columns\n"), 1, 1); err == nil {
		t.Error("a file without the expected header parsed")
	}
}
